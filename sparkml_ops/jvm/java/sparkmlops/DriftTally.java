package sparkmlops;

import java.io.IOException;
import java.io.ObjectInputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

import org.apache.spark.SparkContext;
import org.apache.spark.TaskContext;
import org.apache.spark.util.AccumulatorV2;
import org.apache.spark.util.TaskCompletionListener;

/**
 * Per-feature drift counts of the rows that flow past a {@link DriftTap}: rows, per feature a count per
 * bucket, NULLs, min and max.
 *
 * <p>Why an accumulator: it is how Spark's own SQL metrics leave generated code. Each task counts into its
 * own copy (deserialised with the task), and the driver merges the copies of successful tasks, once per
 * partition of a result stage, as it does for an {@code Observation}. Buckets follow Bucketizer's rule over
 * (-inf, splits..., +inf): [s_i, s_i+1), the last one closed, NaN in one bucket of its own after them.
 * min/max follow Spark's: NaN above every number, NULLs ignored.
 *
 * <p>Why values are buffered: {@link #add(int, double)} runs for every value of every feature, 40 calls per
 * row, each for a different feature. Counting there kept each feature's parameters in memory and each value's
 * bucket on a chain of dependent loads. {@code add} now only stores the value; every {@link #BLOCK} values a
 * feature's block is counted in one loop with its parameters in registers, which halved what counting costs
 * a score pass (docs/benchmarks.md). A task's last partial blocks are counted when it completes, before Spark
 * sends its copy to the driver; whatever reads the counts on the driver counts the pending values first.
 *
 * <p>Not final only so that benchmarks/feature_drift.py can time a tally that does less (its floor).
 */
public class DriftTally extends AccumulatorV2<Object, DriftTally> {
    private static final long serialVersionUID = 1L;
    private static final int CELLS = 1024; // grid cells per feature, between its first and last finite split
    private static final int SLOTS = CELLS + 3; // a feature's grid: below, CELLS cells, the cell after, above
    private static final int BLOCK = 256; // values buffered per feature before they are counted
    // params holds PARAMS doubles per feature, in this order: grid start, cells per unit, least value, greatest value
    private static final int PARAMS = 4;
    private static final int START = 0;
    private static final int SCALE = 1;
    private static final int LOW = 2; // least value but NaN (+inf while there is none)
    private static final int HIGH = 3; // greatest value but NaN (-inf while there is none)

    private final double[][] splits; // per feature, with -inf and +inf at the ends
    private final int[] offsets; // per feature, where its buckets start in toBytes' layout
    private final int width; // a power of two >= every feature's split count: the stride of padded and counts
    private final double[] padded; // per feature, its splits then +inf up to width: one flat array for the search
    private final int[] last; // per feature, its last bucket (holds +inf)
    private final double[] params; // per feature, PARAMS doubles (START, SCALE, LOW, HIGH)
    private long rows;
    private final long[] counts; // per feature, width counts (bucket j at f * width + j)
    private final long[] nans;
    private final long[] nulls;
    // What only the counting needs, never serialised: a task's copy builds it when it first counts.
    private transient byte[] grid; // per feature, SLOTS buckets by slot (below, cells, the cell after, above), or -1: search
    private transient long[] slots; // per feature, SLOTS counts by slot, folded into counts by settle()
    private transient int[] searched; // the positions in block of one block's values to search
    private transient double[] block; // per feature, BLOCK values not counted yet
    private transient int[] pending; // per feature, how many of its block's values are not counted yet

    protected DriftTally(double[][] splits) {
        this.splits = splits;
        offsets = new int[splits.length + 1];
        for (int f = 0; f < splits.length; f++) {
            offsets[f + 1] = offsets[f] + splits[f].length; // length - 1 buckets, then NaN's
        }
        int w = 1;
        for (double[] s : splits) {
            while (w < s.length) {
                w *= 2;
            }
        }
        width = w;
        padded = new double[splits.length * w];
        last = new int[splits.length];
        Arrays.fill(padded, Double.POSITIVE_INFINITY);
        for (int f = 0; f < splits.length; f++) {
            System.arraycopy(splits[f], 0, padded, f * w, splits[f].length);
            last[f] = splits[f].length - 2;
        }
        params = new double[splits.length * PARAMS];
        counts = new long[splits.length * w];
        nans = new long[splits.length];
        nulls = new long[splits.length];
        buffers();
        reset();
    }

    private void buffers() {
        block = new double[splits.length * BLOCK];
        pending = new int[splits.length];
    }

    /**
     * A copy deserialised in a task counts its last partial blocks when the task completes: Spark runs
     * completion listeners on the task's thread before it collects the accumulators to send.
     */
    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        buffers();
        TaskContext task = TaskContext.get();
        if (task != null) {
            task.addTaskCompletionListener((TaskCompletionListener) context -> settle());
        }
    }

    /**
     * Feature {@code f}'s grid: CELLS equal cells between its first and last finite split, each holding the
     * bucket of every value in it, or -1 when a split lies in the cell or within a quarter cell of it; a slot
     * before them for values at least a cell below the first split (bucket 0), and one after for values at least
     * a cell above the last (the last bucket). A value's slot is one multiplication and a clamp away, and
     * rounding puts it at most 1/128 of a cell off (the cells are wider than 256 ulps), so a cell without a split
     * within a quarter cell has one bucket throughout. Values in the other cells, NaN (whose slot is always -1),
     * and values of a feature with too few splits (or more buckets than a byte holds) are searched.
     */
    private void buildGrid(int f) {
        double[] s = splits[f];
        int n = s.length;
        int base = f * SLOTS;
        Arrays.fill(grid, base, base + SLOTS, (byte) -1);
        double lo = n >= 4 ? s[1] : 0.0;
        double hi = n >= 4 ? s[n - 2] : 0.0;
        double cell = (hi - lo) / CELLS;
        // cells of a few ulps would make the cell bounds below inexact: such a feature is searched
        if (n < 4 || n > Byte.MAX_VALUE || !(cell > 256 * Math.ulp(Math.max(Math.abs(lo), Math.abs(hi))))
                || Double.isInfinite(hi - lo)) {
            return; // params 0, 0: every value lands on slot 1, which says search
        }
        for (int c = 0; c < CELLS; c++) {
            double from = lo + (c - 0.25) * cell;
            double to = lo + (c + 1.25) * cell;
            boolean near = false;
            for (int j = 1; j < n - 1 && !near; j++) {
                near = s[j] >= from && s[j] <= to;
            }
            grid[base + 1 + c] = near ? -1 : (byte) search(f, lo + (c + 0.5) * cell);
        }
        grid[base] = 0; // a whole cell below the first finite split
        grid[base + SLOTS - 1] = (byte) (n - 2); // a whole cell above the last one
        params[f * PARAMS + START] = lo;
        params[f * PARAMS + SCALE] = CELLS / (hi - lo);
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

    /** Feature {@code f} has value {@code v} in the current row: stored, and counted with its block. */
    public void add(int f, double v) {
        int k = pending[f];
        block[f * BLOCK + k] = v;
        if (k == BLOCK - 1) {
            count(f, BLOCK);
            k = -1;
        }
        pending[f] = k + 1;
    }

    /**
     * Counts feature {@code f}'s first {@code n} buffered values. One loop with no branch: each value's slot
     * count goes up, and the position of a value in a slot that says "search" is kept (at the end of the list
     * when it does not); a second, short loop searches those. Slot counts are folded into buckets by settle().
     */
    private void count(int f, int n) {
        if (grid == null) {
            grid = new byte[splits.length * SLOTS];
            for (int g = 0; g < splits.length; g++) {
                buildGrid(g);
            }
            slots = new long[splits.length * SLOTS];
            searched = new int[BLOCK];
        }
        double[] p = params;
        int o = f * PARAMS;
        double start = p[o + START];
        double scale = p[o + SCALE];
        double low = p[o + LOW];
        double high = p[o + HIGH];
        byte[] g = grid;
        long[] bySlot = slots;
        double[] values = block;
        int[] search = searched;
        int first = f * SLOTS + 1;
        int from = f * BLOCK;
        int m = 0;
        for (int k = from; k < from + n; k++) {
            double v = values[k];
            // saturates for huge values; NaN gives 0, a slot of -1
            int slot = first + Math.max(-1, Math.min((int) ((v - start) * scale), CELLS + 1));
            bySlot[slot]++;
            search[m] = k;
            m += g[slot] >>> 31; // 1 when the slot says search
            low = v < low ? v : low; // NaN compares false: min and max follow from its count (toBytes)
            high = v > high ? v : high;
        }
        p[o + LOW] = low;
        p[o + HIGH] = high;
        for (int j = 0; j < m; j++) {
            double v = values[search[j]];
            if (v != v) {
                nans[f]++;
            } else {
                counts[f * width + search(f, v)]++;
            }
        }
    }

    /** Counts every pending value and folds the slot counts into buckets: the counts are then complete. */
    private void settle() {
        for (int f = 0; f < splits.length; f++) {
            if (pending[f] > 0) {
                count(f, pending[f]);
                pending[f] = 0;
            }
        }
        if (slots == null) {
            return;
        }
        for (int s = 0; s < slots.length; s++) {
            int bucket = grid[s];
            if (bucket >= 0 && slots[s] != 0) {
                counts[s / SLOTS * width + bucket] += slots[s];
            }
        }
        Arrays.fill(slots, 0); // the values of slots that say search were counted by count()
    }

    /**
     * Feature {@code f}'s bucket of {@code v} (not NaN): the last split <= v, by a binary search of fixed length
     * whose steps compile to conditional moves (a branching search mispredicts at almost every step). The first
     * split is -inf, so there is one; +inf (and the padding) fall in the last bucket, closed like Bucketizer's.
     */
    private int search(int f, double v) {
        int base = f * width;
        int at = 0;
        for (int step = width >> 1; step > 0; step >>= 1) {
            at = padded[base + at + step] <= v ? at + step : at;
        }
        return Math.min(at, last[f]);
    }

    /**
     * The counts as big-endian longs (rows, buckets, nulls) then doubles (min, max): one py4j call for Python.
     * min and max follow Spark's order, NaN above every number; a feature without values has NaN for both.
     */
    public byte[] toBytes() {
        settle();
        int n = splits.length;
        long[] buckets = new long[offsets[n]];
        double[] min = new double[n];
        double[] max = new double[n];
        for (int f = 0; f < n; f++) {
            System.arraycopy(counts, f * width, buckets, offsets[f], splits[f].length - 1);
            buckets[offsets[f + 1] - 1] = nans[f]; // NaN's bucket comes after the others
            long nan = nans[f];
            boolean numbers = rows - nulls[f] - nan > 0;
            min[f] = numbers ? params[f * PARAMS + LOW] : Double.NaN;
            max[f] = nan > 0 || !numbers ? Double.NaN : params[f * PARAMS + HIGH];
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
        Arrays.fill(pending, 0);
        if (slots != null) {
            Arrays.fill(slots, 0);
        }
        Arrays.fill(counts, 0);
        Arrays.fill(nans, 0);
        Arrays.fill(nulls, 0);
        for (int f = 0; f < splits.length; f++) {
            params[f * PARAMS + LOW] = Double.POSITIVE_INFINITY;
            params[f * PARAMS + HIGH] = Double.NEGATIVE_INFINITY;
        }
    }

    /** Counting is done by {@link #row}, {@link #none} and {@link #add(int, double)}; a generic add has nothing to count. */
    @Override
    public void add(Object v) {
        throw new UnsupportedOperationException("DriftTally counts through row(), none(f) and add(f, v)");
    }

    @Override
    public void merge(AccumulatorV2<Object, DriftTally> other) {
        DriftTally b = (DriftTally) other;
        if (b.counts.length != counts.length || b.splits.length != splits.length) {
            throw new IllegalArgumentException("cannot merge drift tallies of different features");
        }
        settle();
        b.settle();
        rows += b.rows;
        for (int j = 0; j < counts.length; j++) {
            counts[j] += b.counts[j];
        }
        for (int f = 0; f < splits.length; f++) {
            nulls[f] += b.nulls[f];
            nans[f] += b.nans[f];
            int o = f * PARAMS;
            params[o + LOW] = Math.min(params[o + LOW], b.params[o + LOW]);
            params[o + HIGH] = Math.max(params[o + HIGH], b.params[o + HIGH]);
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
