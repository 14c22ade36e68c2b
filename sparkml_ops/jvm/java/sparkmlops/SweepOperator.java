package sparkmlops;

import java.util.Collections;
import java.util.List;

import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.AttributeSet;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.SparkStrategy;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.catalyst.types.DataTypeUtils;
import scala.Product;
import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The feature pass ({@link Sweep}) as an operator of Spark's plans: a logical node over the sorted stream, its
 * physical node, and the planner strategy that turns one into the other.
 *
 * <p>Why an operator and not an RDD turned back into a DataFrame: the pass reads Catalyst's internal rows (no
 * per-value Java objects), and as a node of the plan it keeps what a DataFrame over an RDD loses. The sources stay
 * in the plan, so {@code DataFrame.inputFiles()} (the lineage a model records, sparkml_ops/io/fingerprints.py) and
 * {@code explain()} still name them; and nothing runs until the frame is used, with adaptive execution planning the
 * shuffle below the pass like any other.
 */
public final class SweepOperator {
    private SweepOperator() {
    }

    static <T> Seq<T> seq(List<T> items) {
        return CollectionConverters.asScala(items).toSeq();
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    static Seq<Attribute> attributes(StructType schema) {
        return (Seq) DataTypeUtils.toAttributes(schema);
    }

    // Both nodes are products of (child, planJson, outputSchemaJson, output), as Catalyst's case classes would be:
    // TreeNode's hashCode hashes these elements, and equality compares them (plans are found again by equality).
    static boolean sameElements(Product node, Object other) {
        return other != null && other.getClass() == node.getClass()
            && node.productIterator().sameElements(((Product) other).productIterator());
    }

    // explain() shows the output columns, not the plan's JSON.
    static scala.collection.Iterator<Object> shownArgs(Seq<Attribute> output) {
        return CollectionConverters.asScala(Collections.<Object>singletonList(output).iterator());
    }

    /** The logical node: {@code child} (sorted by keys, time, kind) -> one row per point, of {@code outputSchemaJson}. */
    public static final class Logical extends LogicalPlan {
        private static final long serialVersionUID = 1L;
        private final LogicalPlan child;
        private final String planJson;
        private final String outputSchemaJson;
        private final Seq<Attribute> output;
        private final Seq<LogicalPlan> children;

        // Catalyst copies nodes through this constructor (TreeNode.makeCopy): its parameters are the product's elements.
        public Logical(LogicalPlan child, String planJson, String outputSchemaJson, Seq<Attribute> output) {
            this.child = child;
            this.planJson = planJson;
            this.outputSchemaJson = outputSchemaJson;
            this.output = output;
            this.children = seq(Collections.singletonList(child));
        }

        static Logical over(LogicalPlan child, String planJson, String outputSchemaJson) {
            return new Logical(child, planJson, outputSchemaJson, attributes((StructType) DataType.fromJson(outputSchemaJson)));
        }

        @Override public Seq<Attribute> output() { return output; }
        @Override public Seq<LogicalPlan> children() { return children; }
        // The output columns are made here, not taken from the child: without this, analysis calls them missing.
        @Override public AttributeSet producedAttributes() { return outputSet(); }
        // The pass reads its input's columns by name: none may be pruned away below it (ColumnPruning asks this).
        @Override public AttributeSet references() { return child.outputSet(); }
        @Override public LogicalPlan withNewChildrenInternal(IndexedSeq<LogicalPlan> newChildren) {
            return new Logical(newChildren.apply(0), planJson, outputSchemaJson, output);
        }
        @Override public String nodeName() { return "Sweep"; }
        @Override public scala.collection.Iterator<Object> stringArgs() { return shownArgs(output); }
        @Override public int productArity() { return 4; }
        @Override public Object productElement(int n) { return new Object[] {child, planJson, outputSchemaJson, output}[n]; }
        @Override public boolean canEqual(Object other) { return other instanceof Logical; }
        @Override public boolean equals(Object other) { return sameElements(this, other); }
    }

    /** The physical node: the pass over each partition of its child's internal rows, as unsafe rows. */
    public static final class Physical extends SparkPlan {
        private static final long serialVersionUID = 1L;
        private final SparkPlan child;
        private final String planJson;
        private final String outputSchemaJson;
        private final Seq<Attribute> output;
        private final Seq<SparkPlan> children;

        public Physical(SparkPlan child, String planJson, String outputSchemaJson, Seq<Attribute> output) {
            this.child = child;
            this.planJson = planJson;
            this.outputSchemaJson = outputSchemaJson;
            this.output = output;
            this.children = seq(Collections.singletonList(child));
        }

        @Override public RDD<InternalRow> doExecute() {
            StructType out = (StructType) DataType.fromJson(outputSchemaJson);
            Sweep sweep = new Sweep(Sweep.Plan.parse(planJson, child.schema(), out));
            return child.execute().toJavaRDD().mapPartitions(sweep).rdd();
        }

        @Override public Seq<Attribute> output() { return output; }
        @Override public Seq<SparkPlan> children() { return children; }
        @Override public AttributeSet producedAttributes() { return outputSet(); }
        @Override public AttributeSet references() { return child.outputSet(); }
        @Override public SparkPlan withNewChildrenInternal(IndexedSeq<SparkPlan> newChildren) {
            return new Physical(newChildren.apply(0), planJson, outputSchemaJson, output);
        }
        @Override public String nodeName() { return "Sweep"; }
        @Override public scala.collection.Iterator<Object> stringArgs() { return shownArgs(output); }
        @Override public int productArity() { return 4; }
        @Override public Object productElement(int n) { return new Object[] {child, planJson, outputSchemaJson, output}[n]; }
        @Override public boolean canEqual(Object other) { return other instanceof Physical; }
        @Override public boolean equals(Object other) { return sameElements(this, other); }
    }

    /** Plans {@link Logical} as {@link Physical}; added once to a session's extra strategies by {@link #register}. */
    public static final class Strategy extends SparkStrategy {
        @Override public Seq<SparkPlan> apply(LogicalPlan plan) {
            if (plan instanceof Logical node) {
                return seq(List.of(new Physical(planLater(node.child), node.planJson, node.outputSchemaJson, node.output)));
            }
            return seq(List.of());
        }

        // Why at run time and not through spark.sql.extensions: a job's session may have been made before ours
        // (spark-submit, a notebook), and the strategy is needed only by plans that hold the pass.
        static synchronized void register(SparkSession session) {
            Seq<SparkStrategy> current = session.experimental().extraStrategies();
            if (current.exists(s -> s instanceof Strategy)) {
                return;
            }
            List<SparkStrategy> strategies = new java.util.ArrayList<>(CollectionConverters.asJava(current));
            strategies.add(new Strategy());
            session.experimental().extraStrategies_$eq(seq(strategies));
        }
    }
}
