package sparkmlops;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

import org.apache.spark.SparkContext;
import org.apache.spark.util.AccumulatorV2;

/**
 * Per-feature drift counts of the rows that flow past a {@link DriftTap}: rows, per feature a count per
 * bucket, NULLs, min and max.
 *
 * <p>Why an accumulator: it is how Spark's own SQL metrics leave generated code. Each task counts into its
 * own copy (deserialised with the task), and the driver merges the copies of successful tasks, once per
 * partition of a result stage, as it does for an {@code Observation}. Buckets follow Bucketizer's rule over
 * (-inf, splits..., +inf): [s_i, s_i+1), the last one closed, NaN in one bucket of its own after them.
 * min/max follow Spark's: NaN above every number, NULLs ignored.
 */
public final class DriftTally extends AccumulatorV2<Object, DriftTally> {
    private static final long serialVersionUID = 1L;

    private final double[][] splits; // per feature, with -inf and +inf at the ends
    private final int[] offsets; // per feature, where its buckets start in buckets
    private long rows;
    private final long[] buckets;
    private final long[] nulls;
    private final double[] low; // least value but NaN (+inf while there is none)
    private final double[] high; // greatest value but NaN (-inf while there is none)

    DriftTally(double[][] splits) {
        this.splits = splits;
        offsets = new int[splits.length + 1];
        for (int f = 0; f < splits.length; f++) {
            offsets[f + 1] = offsets[f] + splits[f].length; // length - 1 buckets, then NaN's
        }
        buckets = new long[offsets[splits.length]];
        nulls = new long[splits.length];
        low = new double[splits.length];
        high = new double[splits.length];
        reset();
    }

    /**
     * A tally registered with {@code sc} for features with the given finite, sorted splits (one list per feature).
     * Called from Python: the splits cross py4j as plain numbers; -inf and +inf are added here.
     */
    public static DriftTally register(SparkContext sc, List<List<Double>> innerSplits) {
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
        DriftTally tally = new DriftTally(splits);
        sc.register(tally);
        return tally;
    }

    /** The number of features counted. */
    public int features() {
        return splits.length;
    }

    /** One more row went past. */
    public void row() {
        rows++;
    }

    /** Feature {@code f} is NULL in the current row. */
    public void none(int f) {
        nulls[f]++;
    }

    /** Feature {@code f} has value {@code v} in the current row. */
    public void add(int f, double v) {
        double[] s = splits[f];
        if (v != v) { // NaN: its own bucket; min and max follow from its count (toBytes)
            buckets[offsets[f] + s.length - 1]++;
            return;
        }
        // Count the splits at or below v without branches: for a dozen splits this beats a binary search,
        // whose every step is a branch the CPU cannot predict. s[0] is -inf, so the count is >= 1; +inf
        // belongs to the last bucket, closed like Bucketizer's.
        int at = 0;
        for (double x : s) {
            at += v >= x ? 1 : 0;
        }
        buckets[offsets[f] + Math.min(at - 1, s.length - 2)]++;
        if (v < low[f]) {
            low[f] = v;
        }
        if (v > high[f]) {
            high[f] = v;
        }
    }

    /**
     * The counts as big-endian longs (rows, buckets, nulls) then doubles (min, max): one py4j call for Python.
     * min and max follow Spark's order, NaN above every number; a feature without values has NaN for both.
     */
    public byte[] toBytes() {
        int n = splits.length;
        double[] min = new double[n];
        double[] max = new double[n];
        for (int f = 0; f < n; f++) {
            long nan = buckets[offsets[f + 1] - 1];
            boolean numbers = rows - nulls[f] - nan > 0;
            min[f] = numbers ? low[f] : Double.NaN;
            max[f] = nan > 0 || !numbers ? Double.NaN : high[f];
        }
        ByteBuffer out = ByteBuffer.allocate(Long.BYTES * (1 + buckets.length + n) + Double.BYTES * 2 * n);
        out.putLong(rows);
        out.asLongBuffer().put(buckets).put(nulls);
        out.position(out.position() + Long.BYTES * (buckets.length + n));
        out.asDoubleBuffer().put(min).put(max);
        return out.array();
    }

    @Override
    public boolean isZero() {
        return rows == 0;
    }

    @Override
    public DriftTally copy() {
        DriftTally c = new DriftTally(splits);
        c.merge(this);
        return c;
    }

    @Override
    public void reset() {
        rows = 0;
        Arrays.fill(buckets, 0);
        Arrays.fill(nulls, 0);
        Arrays.fill(low, Double.POSITIVE_INFINITY);
        Arrays.fill(high, Double.NEGATIVE_INFINITY);
    }

    /** Counting is done by {@link #row}, {@link #none} and {@link #add(int, double)}; a generic add has nothing to count. */
    @Override
    public void add(Object v) {
        throw new UnsupportedOperationException("DriftTally counts through row(), none(f) and add(f, v)");
    }

    @Override
    public void merge(AccumulatorV2<Object, DriftTally> other) {
        DriftTally b = (DriftTally) other;
        if (b.buckets.length != buckets.length || b.splits.length != splits.length) {
            throw new IllegalArgumentException("cannot merge drift tallies of different features");
        }
        rows += b.rows;
        for (int j = 0; j < buckets.length; j++) {
            buckets[j] += b.buckets[j];
        }
        for (int f = 0; f < splits.length; f++) {
            nulls[f] += b.nulls[f];
            low[f] = Math.min(low[f], b.low[f]);
            high[f] = Math.max(high[f], b.high[f]);
        }
    }

    @Override
    public DriftTally value() {
        return this;
    }

    @Override
    public String toString() {
        return "DriftTally(" + splits.length + " features, " + rows + " rows)";
    }
}
