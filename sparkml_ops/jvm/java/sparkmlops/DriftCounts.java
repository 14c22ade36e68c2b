package sparkmlops;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.BoundReference;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.expressions.aggregate.ImperativeAggregate;
import org.apache.spark.sql.catalyst.expressions.aggregate.TypedImperativeAggregate;
import org.apache.spark.sql.classic.ExpressionUtils;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Per-feature drift counts of a pass, as one aggregate: per feature, a count per bucket, NULLs, min and max.
 *
 * <p>Why a Catalyst aggregate: the same counts as Spark expressions (a Bucketizer code plus a
 * histogram_numeric, min and max per feature) are evaluated per column per row by the observation, about
 * 200 ns per value; a typed {@code Aggregator} behind {@code functions.udaf} first turns every row into an
 * external {@code Row} of boxed doubles. Here one call per row reads the {@code InternalRow} and loops over
 * the features. Buckets follow Bucketizer's rule over (-inf, splits..., +inf): [s_i, s_i+1), the last one
 * closed, NaN in one bucket of its own after them. min/max follow Spark's: NaN above every number, NULLs ignored.
 *
 * <p>Written in Java against Catalyst's Scala classes, hence the hand-written {@code Product} members a Scala
 * case class would get: Spark copies and compares expression trees through them.
 */
public final class DriftCounts extends TypedImperativeAggregate<DriftCounts.Counts> implements Serializable {
    private static final long serialVersionUID = 2L;
    private static final DataType LONGS = DataTypes.createArrayType(DataTypes.LongType, false);
    private static final DataType DOUBLES = DataTypes.createArrayType(DataTypes.DoubleType, false);
    private static final StructType RESULT = new StructType()
        .add("rows", DataTypes.LongType, false).add("buckets", LONGS, false).add("nulls", LONGS, false)
        .add("min", DOUBLES, false).add("max", DOUBLES, false);

    private final double[][] splits; // per feature, with -inf and +inf at the ends
    private final Seq<Expression> inputs; // one double per feature
    private final int mutableOffset;
    private final int inputOffset;
    private final int[] offsets; // per feature, where its buckets start in Counts.buckets
    private final Expression[] evaluated; // the inputs, as an array for the per-row loop
    private final int[] ordinals; // per feature, its column in the input row when bound to one, else -1

    /** The aggregate over {@code inputs} with the given splits; the buffer offsets are Spark's (see {@link ImperativeAggregate}). */
    public DriftCounts(double[][] splits, Seq<Expression> inputs, int mutableOffset, int inputOffset) {
        if (splits.length != inputs.size()) {
            throw new IllegalArgumentException(splits.length + " split lists for " + inputs.size() + " columns");
        }
        this.splits = splits;
        this.inputs = inputs;
        this.mutableOffset = mutableOffset;
        this.inputOffset = inputOffset;
        offsets = new int[splits.length + 1];
        for (int f = 0; f < splits.length; f++) {
            offsets[f + 1] = offsets[f] + splits[f].length; // length - 1 buckets, then NaN's
        }
        evaluated = CollectionConverters.asJava(inputs).toArray(new Expression[0]);
        ordinals = new int[evaluated.length];
        for (int f = 0; f < evaluated.length; f++) { // bound (as Spark runs it): read straight from the row, no boxing
            boolean direct = evaluated[f] instanceof BoundReference && DataTypes.DoubleType.equals(evaluated[f].dataType());
            ordinals[f] = direct ? ((BoundReference) evaluated[f]).ordinal() : -1;
        }
    }

    /**
     * The aggregate column over {@code inputs} (doubles, NULL allowed), one per entry of {@code innerSplits}.
     * Called from Python: the splits are the finite, sorted ones of each feature, so they cross py4j as plain
     * numbers; the Column is then wrapped by pyspark.
     */
    public static Column column(List<List<Double>> innerSplits, List<Column> inputs) {
        double[][] splits = new double[innerSplits.size()][];
        for (int f = 0; f < splits.length; f++) {
            List<Double> s = innerSplits.get(f);
            double[] all = new double[s.size() + 2];
            all[0] = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < s.size(); j++) {
                all[j + 1] = s.get(j);
            }
            all[all.length - 1] = Double.POSITIVE_INFINITY;
            splits[f] = all;
        }
        List<Expression> exprs = new ArrayList<>();
        for (Column c : inputs) {
            exprs.add(ExpressionUtils.expression(c));
        }
        DriftCounts agg = new DriftCounts(splits, CollectionConverters.asScala(exprs).toList(), 0, 0);
        return ExpressionUtils.column(agg.toAggregateExpression());
    }

    /** The buffer: flat bucket counts (features after one another), NULLs, min, max. */
    public static final class Counts {
        long rows;
        final long[] buckets;
        final long[] nulls;
        final double[] min;
        final double[] max;

        Counts(int features, int size) {
            buckets = new long[size];
            nulls = new long[features];
            min = new double[features];
            max = new double[features];
        }
    }

    @Override
    public Counts createAggregationBuffer() {
        Counts c = new Counts(splits.length, offsets[splits.length]);
        Arrays.fill(c.min, Double.NaN); // a feature without values has no min: NaN here, None in Python (no present rows)
        Arrays.fill(c.max, Double.NaN);
        return c;
    }

    /** Spark's order for min: NaN above every number. */
    private static double lower(double x, double y) {
        return Double.isNaN(x) ? y : Double.isNaN(y) ? x : Math.min(x, y);
    }

    /** Spark's order for max: NaN above every number. */
    private static double higher(double x, double y) {
        return Double.isNaN(x) || Double.isNaN(y) ? Double.NaN : Math.max(x, y);
    }

    /** Bucketizer's search: the last bucket holds +inf, NaN gets the bucket after all of them. */
    private static int bucket(double[] s, double v) {
        if (Double.isNaN(v)) {
            return s.length - 1;
        }
        if (v == s[s.length - 1]) {
            return s.length - 2;
        }
        int i = Arrays.binarySearch(s, v);
        return i >= 0 ? i : -i - 2;
    }

    @Override
    public Counts update(Counts c, InternalRow row) {
        c.rows++;
        for (int f = 0; f < ordinals.length; f++) {
            int at = ordinals[f];
            Object boxed = at >= 0 ? null : evaluated[f].eval(row);
            if (at >= 0 ? row.isNullAt(at) : boxed == null) {
                c.nulls[f]++;
                continue;
            }
            double v = at >= 0 ? row.getDouble(at) : (Double) boxed;
            c.buckets[offsets[f] + bucket(splits[f], v)]++;
            if (c.rows - c.nulls[f] == 1) {
                c.min[f] = v;
                c.max[f] = v;
            } else {
                c.min[f] = lower(c.min[f], v);
                c.max[f] = higher(c.max[f], v);
            }
        }
        return c;
    }

    @Override
    public Counts merge(Counts a, Counts b) {
        for (int f = 0; f < splits.length; f++) {
            long presentA = a.rows - a.nulls[f];
            long presentB = b.rows - b.nulls[f];
            if (presentB > 0) {
                a.min[f] = presentA == 0 ? b.min[f] : lower(a.min[f], b.min[f]);
                a.max[f] = presentA == 0 ? b.max[f] : higher(a.max[f], b.max[f]);
            }
            a.nulls[f] += b.nulls[f];
        }
        for (int j = 0; j < a.buckets.length; j++) {
            a.buckets[j] += b.buckets[j];
        }
        a.rows += b.rows;
        return a;
    }

    @Override
    public Object eval(Counts c) {
        return new GenericInternalRow(new Object[] {c.rows, UnsafeArrayData.fromPrimitiveArray(c.buckets),
            UnsafeArrayData.fromPrimitiveArray(c.nulls), UnsafeArrayData.fromPrimitiveArray(c.min),
            UnsafeArrayData.fromPrimitiveArray(c.max)});
    }

    /** The buffer as longs then doubles, in a fixed order (its size follows from the splits). */
    @Override
    public byte[] serialize(Counts c) {
        int n = splits.length;
        ByteBuffer out = ByteBuffer.allocate(Long.BYTES * (1 + c.buckets.length + n) + Double.BYTES * 2 * n);
        out.putLong(c.rows);
        out.asLongBuffer().put(c.buckets).put(c.nulls);
        out.position(out.position() + Long.BYTES * (c.buckets.length + n));
        out.asDoubleBuffer().put(c.min).put(c.max);
        return out.array();
    }

    @Override
    public Counts deserialize(byte[] bytes) {
        Counts c = createAggregationBuffer();
        ByteBuffer in = ByteBuffer.wrap(bytes);
        c.rows = in.getLong();
        in.asLongBuffer().get(c.buckets).get(c.nulls);
        in.position(in.position() + Long.BYTES * (c.buckets.length + c.nulls.length));
        in.asDoubleBuffer().get(c.min).get(c.max);
        return c;
    }

    @Override
    public DataType dataType() {
        return RESULT;
    }

    @Override
    public boolean nullable() {
        return false;
    }

    @Override
    public String prettyName() {
        return "drift_counts";
    }

    @Override
    public Seq<Expression> children() {
        return inputs;
    }

    @Override
    public Expression withNewChildrenInternal(IndexedSeq<Expression> children) {
        return new DriftCounts(splits, children, mutableOffset, inputOffset);
    }

    @Override
    public int mutableAggBufferOffset() {
        return mutableOffset;
    }

    @Override
    public int inputAggBufferOffset() {
        return inputOffset;
    }

    @Override
    public ImperativeAggregate withNewMutableAggBufferOffset(int offset) {
        return new DriftCounts(splits, inputs, offset, inputOffset);
    }

    @Override
    public ImperativeAggregate withNewInputAggBufferOffset(int offset) {
        return new DriftCounts(splits, inputs, mutableOffset, offset);
    }

    @Override
    public int productArity() {
        return 4;
    }

    @Override
    public Object productElement(int n) {
        switch (n) {
            case 0: return splits;
            case 1: return inputs;
            case 2: return mutableOffset;
            case 3: return inputOffset;
            default: throw new IndexOutOfBoundsException(Integer.toString(n));
        }
    }

    @Override
    public boolean canEqual(Object other) {
        return other instanceof DriftCounts;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof DriftCounts)) {
            return false;
        }
        DriftCounts o = (DriftCounts) other;
        return Arrays.deepEquals(splits, o.splits) && inputs.equals(o.inputs) && mutableOffset == o.mutableOffset
            && inputOffset == o.inputOffset;
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.deepHashCode(splits), inputs, mutableOffset, inputOffset);
    }
}
