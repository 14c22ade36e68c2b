package sparkmlops;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.codegen.CodeBlock;
import org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator$;
import org.apache.spark.sql.catalyst.expressions.codegen.CodegenContext;
import org.apache.spark.sql.catalyst.expressions.codegen.ExprCode;
import org.apache.spark.sql.catalyst.expressions.codegen.JavaCode;
import org.apache.spark.sql.classic.ExpressionUtils;
import org.apache.spark.sql.types.DataType;

import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Passes its first child's value through and counts the other children (one double per feature) into a
 * {@link DriftTally}, row by row, inside the generated code of the stage that computes it.
 *
 * <p>Why an expression and not an {@code Observation}: an observation is a plan node of its own, which cuts
 * whole-stage code generation in two; every row is then materialised and re-read, which cost the score job
 * about a quarter of its time however little the observation counted (docs/benchmarks.md). Here the feature
 * values the stage has already read are handed to the tally by a few instructions each.
 *
 * <p>Not deterministic, so the optimizer neither drops it nor evaluates it twice per row (a deterministic
 * expression referenced twice may be inlined twice by CollapseProject). Written in Java against Catalyst's
 * Scala classes, hence the hand-written {@code Product} members a Scala case class would get.
 */
public final class DriftTap extends Expression implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final int CHUNK = 8; // features per generated counting method (2 x 8 + 1 argument slots)

    private final DriftTally tally;
    private final Seq<Expression> inputs; // the passed-through value, then one double per feature

    /** The tap over {@code inputs}: the value passed through, then the tally's features in order. */
    public DriftTap(DriftTally tally, Seq<Expression> inputs) {
        if (inputs.size() != tally.features() + 1) {
            throw new IllegalArgumentException(tally.features() + " features for " + (inputs.size() - 1) + " columns");
        }
        this.tally = tally;
        this.inputs = inputs;
    }

    /** The column {@code through}, counting {@code features} (doubles, NULL allowed) into {@code tally}; called from Python. */
    public static Column column(DriftTally tally, Column through, List<Column> features) {
        List<Expression> exprs = new ArrayList<>();
        exprs.add(ExpressionUtils.expression(through));
        for (Column c : features) {
            exprs.add(ExpressionUtils.expression(c));
        }
        return ExpressionUtils.column(new DriftTap(tally, CollectionConverters.asScala(exprs).toList()));
    }

    @Override
    public boolean deterministic() {
        return false;
    }

    @Override
    public boolean nullable() {
        return inputs.head().nullable();
    }

    @Override
    public DataType dataType() {
        return inputs.head().dataType();
    }

    @Override
    public Object eval(InternalRow row) {
        Object out = inputs.head().eval(row);
        tally.row();
        for (int f = 1; f < inputs.size(); f++) {
            Object v = inputs.apply(f).eval(row);
            if (v == null) {
                tally.none(f - 1);
            } else {
                tally.add(f - 1, (Double) v);
            }
        }
        return out;
    }

    @Override
    public ExprCode doGenCode(CodegenContext ctx, ExprCode ev) {
        ExprCode head = inputs.head().genCode(ctx);
        StringBuilder code = new StringBuilder(head.code().toString()).append('\n');
        List<ExprCode> values = new ArrayList<>();
        for (int f = 1; f < inputs.size(); f++) {
            ExprCode v = inputs.apply(f).genCode(ctx);
            code.append(v.code().toString()).append('\n');
            values.add(v);
        }
        // The counting goes into small generated methods of CHUNK features each, called with the values: the
        // stage's own method then grows by a few bytes per feature. Inline, 40 features pushed a score stage
        // past HotSpot's 8,000-byte limit for compiling a method, and it ran interpreted (7x slower).
        String t = ctx.addReferenceObj("driftTally", tally, DriftTally.class.getName());
        for (int from = 0; from < values.size(); from += CHUNK) {
            int to = Math.min(values.size(), from + CHUNK);
            StringBuilder params = new StringBuilder();
            StringBuilder args = new StringBuilder();
            StringBuilder body = new StringBuilder(from == 0 ? t + ".row();\n" : "");
            for (int f = from; f < to; f++) {
                String sep = f == from ? "" : ", ";
                params.append(sep).append("boolean n").append(f).append(", double v").append(f);
                args.append(sep).append(values.get(f).isNull()).append(", ").append(values.get(f).value());
                body.append("if (n").append(f).append(") { ").append(t).append(".none(").append(f).append("); } else { ")
                    .append(t).append(".add(").append(f).append(", v").append(f).append("); }\n");
            }
            String name = ctx.freshName("driftTap");
            String call = ctx.addNewFunction(name, "private void " + name + "(" + params + ") {\n" + body + "}\n", false);
            code.append(call).append('(').append(args).append(");\n");
        }
        code.append("boolean ").append(ev.isNull()).append(" = ").append(head.isNull()).append(";\n")
            .append(CodeGenerator$.MODULE$.javaType(dataType())).append(' ').append(ev.value()).append(" = ")
            .append(head.value()).append(";\n");
        List<String> parts = List.of(code.toString());
        List<JavaCode> none = List.of();
        return ev.copy(new CodeBlock(CollectionConverters.asScala(parts).toList(), CollectionConverters.asScala(none).toList()),
            ev.isNull(), ev.value());
    }

    @Override
    public String prettyName() {
        return "drift_tap";
    }

    @Override
    public Seq<Expression> children() {
        return inputs;
    }

    @Override
    public Expression withNewChildrenInternal(IndexedSeq<Expression> children) {
        return new DriftTap(tally, children);
    }

    @Override
    public int productArity() {
        return 2;
    }

    @Override
    public Object productElement(int n) {
        switch (n) {
            case 0: return tally;
            case 1: return inputs;
            default: throw new IndexOutOfBoundsException(Integer.toString(n));
        }
    }

    @Override
    public boolean canEqual(Object other) {
        return other instanceof DriftTap;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof DriftTap)) {
            return false;
        }
        DriftTap o = (DriftTap) other;
        return tally == o.tally && inputs.equals(o.inputs);
    }

    @Override
    public int hashCode() {
        return Objects.hash(System.identityHashCode(tally), inputs);
    }
}
