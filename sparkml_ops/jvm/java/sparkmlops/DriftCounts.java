package sparkmlops;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.apache.spark.sql.Column;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.expressions.Aggregator;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * Per-feature drift counts of a pass, as one aggregate: per feature, a count per bucket, NULLs, min and max.
 *
 * <p>Why a compiled aggregate: the same counts as Spark expressions (a Bucketizer code plus a
 * histogram_numeric, min and max per feature) are evaluated per column per row by the observation, about
 * 200 ns per value; here one call per row loops over the features. Buckets follow Bucketizer's rule over
 * (-inf, splits..., +inf): [s_i, s_i+1), the last one closed, NaN in one bucket of its own after them.
 * min/max follow Spark's: NaN above every number, NULLs ignored.
 */
public final class DriftCounts extends Aggregator<Row, DriftCounts.Counts, DriftCounts.Counts> {
    private static final long serialVersionUID = 1L;

    private final double[][] splits; // per feature, with -inf and +inf at the ends
    private final int[] offsets; // per feature, where its buckets start in Counts.buckets
    private final int size;

    private DriftCounts(List<List<Double>> inner) {
        int n = inner.size();
        splits = new double[n][];
        offsets = new int[n + 1];
        for (int f = 0; f < n; f++) {
            List<Double> s = inner.get(f);
            double[] all = new double[s.size() + 2];
            all[0] = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < s.size(); j++) {
                all[j + 1] = s.get(j);
            }
            all[all.length - 1] = Double.POSITIVE_INFINITY;
            splits[f] = all;
            offsets[f + 1] = offsets[f] + all.length; // length - 1 buckets, then NaN's
        }
        size = offsets[n];
    }

    /**
     * The aggregate column over {@code inputs} (doubles, NULL allowed), one per entry of {@code innerSplits}.
     * Called from Python: the splits are the finite, sorted ones of each feature, so they cross py4j as plain
     * numbers; the Column is then wrapped by pyspark.
     */
    public static Column column(List<List<Double>> innerSplits, List<Column> inputs) {
        if (innerSplits.size() != inputs.size()) {
            throw new IllegalArgumentException(innerSplits.size() + " split lists for " + inputs.size() + " columns");
        }
        List<StructField> fields = new ArrayList<>();
        for (int f = 0; f < inputs.size(); f++) {
            fields.add(DataTypes.createStructField("f" + f, DataTypes.DoubleType, true));
        }
        Encoder<Row> in = Encoders.row(DataTypes.createStructType(fields));
        return functions.udaf(new DriftCounts(innerSplits), in).apply(inputs.toArray(new Column[0]));
    }

    /** The buffer and the result: flat bucket counts (features after one another), NULLs, min, max. */
    public static final class Counts implements Serializable {
        private static final long serialVersionUID = 1L;
        private long rows;
        private long[] buckets;
        private long[] nulls;
        private double[] min;
        private double[] max;

        public Counts() {}

        public long getRows() { return rows; }
        public void setRows(long rows) { this.rows = rows; }
        public long[] getBuckets() { return buckets; }
        public void setBuckets(long[] buckets) { this.buckets = buckets; }
        public long[] getNulls() { return nulls; }
        public void setNulls(long[] nulls) { this.nulls = nulls; }
        public double[] getMin() { return min; }
        public void setMin(double[] min) { this.min = min; }
        public double[] getMax() { return max; }
        public void setMax(double[] max) { this.max = max; }
    }

    @Override
    public Counts zero() {
        Counts c = new Counts();
        int n = splits.length;
        c.buckets = new long[size];
        c.nulls = new long[n];
        c.min = new double[n];
        c.max = new double[n];
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
    public Counts reduce(Counts c, Row row) {
        c.rows++;
        for (int f = 0; f < splits.length; f++) {
            if (row.isNullAt(f)) {
                c.nulls[f]++;
                continue;
            }
            double v = row.getDouble(f);
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
        for (int j = 0; j < size; j++) {
            a.buckets[j] += b.buckets[j];
        }
        a.rows += b.rows;
        return a;
    }

    @Override
    public Counts finish(Counts c) {
        return c;
    }

    @Override
    public Encoder<Counts> bufferEncoder() {
        return Encoders.bean(Counts.class);
    }

    @Override
    public Encoder<Counts> outputEncoder() {
        return Encoders.bean(Counts.class);
    }
}
