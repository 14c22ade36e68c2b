package sparkmlops.bench;

import java.util.Arrays;

import org.apache.spark.SparkContext;
import org.apache.spark.util.AccumulatorV2;

import sparkmlops.DriftTally;

/**
 * The floor of per-feature drift, for benchmarks/feature_drift.py: the least any exact count must do per value.
 *
 * <p>It is handed every feature value by the same {@code DriftTap} in the same generated code, and does one
 * dependent operation per value (adds it to its feature's sum; counts a NULL) and one per row. It finds no
 * bucket, and keeps no min, max or NaN count: every exact drift count does at least this, so a score job with
 * this tally is a lower bound of a score job with drift.
 */
public final class FloorTally extends DriftTally {
    private static final long serialVersionUID = 1L;

    private final double[][] splits;
    private final double[] sums;
    private final long[] missing;

    private FloorTally(double[][] splits) {
        super(splits);
        this.splits = splits;
        sums = new double[splits.length];
        missing = new long[splits.length];
    }

    /** A floor tally of {@code features} features, registered with {@code sc}; called from Python. */
    public static FloorTally register(SparkContext sc, int features) {
        double[][] splits = new double[features][];
        for (int f = 0; f < features; f++) {
            splits[f] = new double[] {Double.NEGATIVE_INFINITY, Double.POSITIVE_INFINITY};
        }
        FloorTally tally = new FloorTally(splits);
        sc.register(tally);
        return tally;
    }

    @Override
    public void none(int f) {
        missing[f]++;
    }

    @Override
    public void add(int f, double v) {
        sums[f] += v;
    }

    @Override
    public DriftTally copy() {
        FloorTally c = new FloorTally(splits);
        c.merge(this);
        return c;
    }

    @Override
    public void reset() {
        super.reset();
        if (sums != null) { // the superclass constructor resets before the fields exist
            Arrays.fill(sums, 0);
            Arrays.fill(missing, 0);
        }
    }

    @Override
    public void merge(AccumulatorV2<Object, DriftTally> other) {
        super.merge(other);
        FloorTally b = (FloorTally) other;
        for (int f = 0; f < sums.length; f++) {
            sums[f] += b.sums[f];
            missing[f] += b.missing[f];
        }
    }
}
