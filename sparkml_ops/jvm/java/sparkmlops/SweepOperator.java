package sparkmlops;

import java.util.Collections;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;

import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.AttributeSet;
import org.apache.spark.sql.catalyst.expressions.Ascending$;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.NullsFirst$;
import org.apache.spark.sql.catalyst.expressions.SortOrder;
import org.apache.spark.sql.catalyst.plans.physical.ClusteredDistribution;
import org.apache.spark.sql.catalyst.plans.physical.Distribution;
import org.apache.spark.sql.catalyst.plans.physical.Partitioning;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.SparkStrategy;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.catalyst.types.DataTypeUtils;
import scala.Option;
import scala.Product;
import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The project's passes over sorted rows as operators of Spark's plans: a logical node, its physical node, and the
 * planner strategy that turns one into the other. Two passes run this way ({@code pass}):
 * <ul>
 *   <li>{@code sweep}: the feature pass ({@link Sweep}) over the stream sorted by entity and time, one new row per
 *       point;
 *   <li>{@code merge}: the merge of tiles ({@link TileMerge}), one tile per run of equal group columns. It keeps
 *       its child's columns, so its output keeps the child's partitioning and order; it asks the planner for its
 *       child clustered and sorted by the group columns, so Spark adds (or reuses) the shuffle and the sort.
 * </ul>
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

    static final String SWEEP = "sweep";
    static final String MERGE = "merge";

    // Both nodes are products of (child, pass, planJson, outputSchemaJson, output), as Catalyst's case classes would be:
    // TreeNode's hashCode hashes these elements, and equality compares them (plans are found again by equality).
    static boolean sameElements(Product node, Object other) {
        return other != null && other.getClass() == node.getClass()
            && node.productIterator().sameElements(((Product) other).productIterator());
    }

    static String name(String pass) {
        return pass.equals(SWEEP) ? "Sweep" : "TileMerge";
    }

    // explain() shows the output columns, not the plan's JSON.
    static scala.collection.Iterator<Object> shownArgs(Seq<Attribute> output) {
        return CollectionConverters.asScala(Collections.<Object>singletonList(output).iterator());
    }

    /** The logical node: the sweep of {@code child} (sorted by keys, time, kind, or by a hash of the keys) into rows of {@code outputSchemaJson},
     * or the merge of its tiles (its own columns). */
    public static final class Logical extends LogicalPlan {
        private static final long serialVersionUID = 1L;
        private final LogicalPlan child;
        private final String pass;
        private final String planJson;
        private final String outputSchemaJson;
        private final Seq<Attribute> output;
        private final Seq<LogicalPlan> children;

        // Catalyst copies nodes through this constructor (TreeNode.makeCopy): its parameters are the product's elements.
        public Logical(LogicalPlan child, String pass, String planJson, String outputSchemaJson, Seq<Attribute> output) {
            this.child = child;
            this.pass = pass;
            this.planJson = planJson;
            this.outputSchemaJson = outputSchemaJson;
            this.output = output;
            this.children = seq(Collections.singletonList(child));
        }

        static Logical sweep(LogicalPlan child, String planJson, String outputSchemaJson) {
            return new Logical(child, SWEEP, planJson, outputSchemaJson, attributes((StructType) DataType.fromJson(outputSchemaJson)));
        }

        static Logical merge(LogicalPlan child, String planJson) {
            return new Logical(child, MERGE, planJson, child.schema().json(), child.output());
        }

        @Override public Seq<Attribute> output() { return output; }
        @Override public Seq<LogicalPlan> children() { return children; }
        // The sweep's output columns are made here, not taken from the child: without this, analysis calls them missing.
        @Override public AttributeSet producedAttributes() { return pass.equals(SWEEP) ? outputSet() : super.producedAttributes(); }
        // The pass reads its input's columns by name: none may be pruned away below it (ColumnPruning asks this).
        @Override public AttributeSet references() { return child.outputSet(); }
        @Override public LogicalPlan withNewChildrenInternal(IndexedSeq<LogicalPlan> newChildren) {
            return new Logical(newChildren.apply(0), pass, planJson, outputSchemaJson, output);
        }
        @Override public String nodeName() { return name(pass); }
        @Override public scala.collection.Iterator<Object> stringArgs() { return shownArgs(output); }
        @Override public int productArity() { return 5; }
        @Override public Object productElement(int n) { return new Object[] {child, pass, planJson, outputSchemaJson, output}[n]; }
        @Override public boolean canEqual(Object other) { return other instanceof Logical; }
        @Override public boolean equals(Object other) { return sameElements(this, other); }
    }

    /** The physical node: the pass over each partition of its child's internal rows, as unsafe rows. */
    public static final class Physical extends SparkPlan {
        private static final long serialVersionUID = 1L;
        private final SparkPlan child;
        private final String pass;
        private final String planJson;
        private final String outputSchemaJson;
        private final Seq<Attribute> output;
        private final Seq<SparkPlan> children;
        private transient JsonNode node; // of a merge: its plan, parsed once (see plan)
        private transient Seq<SortOrder> order; // of a merge: what it asks of its child (see requiredOrder)
        private transient Seq<SortOrder> provided; // of a merge: the order its rows come out in

        public Physical(SparkPlan child, String pass, String planJson, String outputSchemaJson, Seq<Attribute> output) {
            this.child = child;
            this.pass = pass;
            this.planJson = planJson;
            this.outputSchemaJson = outputSchemaJson;
            this.output = output;
            this.children = seq(Collections.singletonList(child));
        }

        @Override public RDD<InternalRow> doExecute() {
            FlatMapFunction<java.util.Iterator<InternalRow>, InternalRow> f = pass.equals(SWEEP)
                ? new Sweep(Sweep.Plan.parse(planJson, child.schema(), (StructType) DataType.fromJson(outputSchemaJson)))
                : new TileMerge(TileMerge.Plan.parse(planJson, child.schema()));
            return child.execute().toJavaRDD().mapPartitions(f).rdd();
        }

        // The merge's rows stay in their partitions and in their order (by the group columns, which it keeps).
        @Override public Partitioning outputPartitioning() {
            return pass.equals(MERGE) ? child.outputPartitioning() : super.outputPartitioning();
        }
        @Override public Seq<SortOrder> outputOrdering() {
            return pass.equals(MERGE) ? providedOrder() : super.outputOrdering();
        }
        // A local merge (see TileMerge.apply) needs no shuffle: each partition's runs are merged where they are.
        @Override public Seq<Distribution> requiredChildDistribution() {
            if (!pass.equals(MERGE) || local() != null) {
                return super.requiredChildDistribution();
            }
            return seq(List.of(ClusteredDistribution.apply(group(), ClusteredDistribution.apply$default$2(), Option.empty(),
                ClusteredDistribution.apply$default$4())));
        }
        @Override public Seq<Seq<SortOrder>> requiredChildOrdering() {
            return pass.equals(MERGE) ? seq(List.of(requiredOrder())) : super.requiredChildOrdering();
        }

        // The planner asks for distributions and orders many times: parse the plan's JSON once.
        private JsonNode plan() {
            if (node == null) {
                node = TileMerge.Plan.node(planJson);
            }
            return node;
        }

        private Seq<Expression> group() {
            return columns(plan().get("group"));
        }

        private JsonNode local() {
            return plan().get("local");
        }

        private Seq<Expression> columns(Iterable<JsonNode> names) {
            List<Expression> out = new java.util.ArrayList<>();
            for (JsonNode name : names) {
                out.add(child.output().find(a -> a.name().equals(name.asText())).get());
            }
            return seq(out);
        }

        private static Seq<SortOrder> ascending(Seq<Expression> columns) {
            List<SortOrder> out = new java.util.ArrayList<>();
            for (Expression e : CollectionConverters.asJava(columns)) {
                out.add(new SortOrder(e, Ascending$.MODULE$, NullsFirst$.MODULE$, seq(List.of())));
            }
            return seq(out);
        }

        // A merge asks for its group columns; a local one for its key column only, one long, which Spark sorts by radix.
        private Seq<SortOrder> requiredOrder() {
            if (order == null) {
                JsonNode local = local();
                order = ascending(local == null ? group() : columns(List.of(local.get("key"))));
            }
            return order;
        }

        // A local merge's key orders its rows by the columns it names as "implies" (the key begins with the day):
        // the rows come out in that order too, so a write partitioned by them adds no sort.
        private Seq<SortOrder> providedOrder() {
            if (provided == null) {
                JsonNode local = local();
                provided = local == null ? requiredOrder() : ascending(columns(local.get("implies"))).appendedAll(requiredOrder()).toSeq();
            }
            return provided;
        }

        @Override public Seq<Attribute> output() { return output; }
        @Override public Seq<SparkPlan> children() { return children; }
        @Override public AttributeSet producedAttributes() { return pass.equals(SWEEP) ? outputSet() : super.producedAttributes(); }
        @Override public AttributeSet references() { return child.outputSet(); }
        @Override public SparkPlan withNewChildrenInternal(IndexedSeq<SparkPlan> newChildren) {
            return new Physical(newChildren.apply(0), pass, planJson, outputSchemaJson, output);
        }
        @Override public String nodeName() { return name(pass); }
        @Override public scala.collection.Iterator<Object> stringArgs() { return shownArgs(output); }
        @Override public int productArity() { return 5; }
        @Override public Object productElement(int n) { return new Object[] {child, pass, planJson, outputSchemaJson, output}[n]; }
        @Override public boolean canEqual(Object other) { return other instanceof Physical; }
        @Override public boolean equals(Object other) { return sameElements(this, other); }
    }

    /** Plans {@link Logical} as {@link Physical}; added once to a session's extra strategies by {@link #register}. */
    public static final class Strategy extends SparkStrategy {
        @Override public Seq<SparkPlan> apply(LogicalPlan plan) {
            if (plan instanceof Logical node) {
                return seq(List.of(new Physical(planLater(node.child), node.pass, node.planJson, node.outputSchemaJson, node.output)));
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
