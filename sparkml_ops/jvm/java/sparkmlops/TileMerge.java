package sparkmlops;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Tiles sorted by their group columns -> one tile per run of rows with equal group columns: the daily tiles of
 * events (an event is a tile of one row) and the roll-ups of tiles (sparkml_ops/features/state.py, rollups.py).
 *
 * <p>Per measure {@code X}: counts {@code X_n} and sums {@code X_s} added, {@code X_lo} and {@code X_hi} kept
 * least and greatest, the distinct values {@code X} (a list) united, and the squared deviations {@code X_q}
 * merged as in Chan et al.: the parts' deviations plus each part's count times the squared distance of its
 * mean from the merged mean. Means are taken relative to the group's least value, so that values far from 0
 * lose no digits, and a part of equal values has that value as mean exactly: equal values merge to exactly 0.
 * NULL statistics are skipped; a statistic with no value in the group stays NULL, as in Spark's aggregates.
 * Columns named {@code min} / {@code max} keep the least / greatest value; any other column keeps the first row's.
 *
 * <p>Why a pass over sorted rows and not Spark's aggregate: the lists of distinct values make that an object
 * aggregate, whose hash map falls back to sorting its rows, and the merge of deviations needs a window over the
 * group before it; a tile here holds about one row, so both cost more than the sort (docs/benchmarks.md).
 */
public final class TileMerge implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;

    private final Plan plan;

    TileMerge(Plan plan) {
        this.plan = plan;
    }

    /** One tile per run of equal {@code group} columns of {@code tiles} (see the class), as a node of the plan; called from Python.
     *
     * <p>{@code planJson}: {@code {"group": [...], "min": [...], "max": [...], "measures": [...]}}, column names; a
     * measure {@code X} is either a list column {@code X} or the statistics {@code X_n} (and any of {@code X_s},
     * {@code X_lo}, {@code X_hi}, {@code X_q}). Spark shuffles and sorts the tiles by the group columns as needed.
     *
     * <p>With {@code "local": {"key": K, "implies": [...]}} the merge neither shuffles nor sorts by the group: each
     * partition is sorted by {@code K} alone, a bigint that is the first group column, and its runs are merged where
     * they are. A group split across partitions, or by a key shared with another group, then gives more than one
     * tile, which every reader of tiles merges anyway. The caller promises that ordering rows by {@code K} orders
     * them by the {@code implies} columns too (K begins with the day), and the rows come out ordered by those. */
    public static Dataset<Row> apply(Dataset<Row> tiles, String planJson) {
        Plan.parse(planJson, tiles.schema()); // a bad plan fails here, not in a task
        org.apache.spark.sql.classic.Dataset<Row> in = (org.apache.spark.sql.classic.Dataset<Row>) tiles;
        SweepOperator.Strategy.register(in.sparkSession());
        return org.apache.spark.sql.classic.Dataset$.MODULE$.ofRows(in.sparkSession(),
            SweepOperator.Logical.merge(in.logicalPlan(), planJson));
    }

    /** The merge's columns, by ordinal in the input (which is also the output's layout). */
    static final class Plan implements Serializable {
        private static final long serialVersionUID = 1L;
        final int[] group, min, max, sets;
        final int[][] numeric; // per measure: n, s, lo, hi, q (-1: absent)
        final DataType[] types, setTypes;
        final StructType schema;

        private Plan(JsonNode node, StructType in) {
            schema = in;
            group = Sweep.ordinals(node.get("group"), in);
            min = Sweep.ordinals(node.get("min"), in);
            max = Sweep.ordinals(node.get("max"), in);
            types = new DataType[in.size()];
            for (int i = 0; i < types.length; i++) {
                types[i] = in.fields()[i].dataType();
            }
            JsonNode local = node.get("local");
            if (local != null) {
                int key = in.fieldIndex(local.get("key").asText());
                if (!DataTypes.LongType.equals(types[key]) || group.length == 0 || group[0] != key) {
                    throw new IllegalArgumentException("the key of a local merge must be its first group column, a bigint");
                }
                Sweep.ordinals(local.get("implies"), in);
            }
            for (int c : concat(min, max)) {
                if (!DataTypes.LongType.equals(types[c])) {
                    throw new IllegalArgumentException("tile column " + in.fields()[c].name() + " is not a bigint");
                }
            }
            List<int[]> stats = new ArrayList<>();
            List<Integer> lists = new ArrayList<>();
            for (JsonNode m : node.get("measures")) {
                String column = m.asText();
                int set = Sweep.ordinal(in, column);
                if (set >= 0) {
                    if (!(types[set] instanceof ArrayType)) {
                        throw new IllegalArgumentException("tile column " + column + " is not a list of distinct values");
                    }
                    lists.add(set);
                    continue;
                }
                int[] s = new int[5];
                String[] suffixes = {"_n", "_s", "_lo", "_hi", "_q"};
                for (int j = 0; j < 5; j++) {
                    s[j] = Sweep.ordinal(in, column + suffixes[j]);
                    if (s[j] >= 0 && (j == 0 ? !DataTypes.LongType.equals(types[s[j]]) : !DataTypes.DoubleType.equals(types[s[j]]))) {
                        throw new IllegalArgumentException("tile column " + column + suffixes[j] + " is " + types[s[j]].simpleString());
                    }
                }
                if (s[0] < 0) {
                    throw new IllegalArgumentException("no tile column " + column + "_n");
                }
                stats.add(s);
            }
            numeric = stats.toArray(new int[0][]);
            sets = lists.stream().mapToInt(Integer::intValue).toArray();
            setTypes = new DataType[sets.length];
            for (int i = 0; i < sets.length; i++) {
                setTypes[i] = ((ArrayType) types[sets[i]]).elementType();
            }
        }

        static Plan parse(String json, StructType in) {
            return new Plan(node(json), in);
        }

        static JsonNode node(String json) {
            try {
                return new ObjectMapper().readTree(json);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("not a tile merge plan: " + e.getMessage(), e);
            }
        }

        private static int[] concat(int[] a, int[] b) {
            int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
            System.arraycopy(b, 0, out, a.length, b.length);
            return out;
        }
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> rows) {
        UnsafeProjection unsafe = UnsafeProjection.create(plan.schema);
        Sweep.Runs groups = new Sweep.Runs(rows, plan.group, Sweep.types(plan.group, plan.schema));
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                return groups.hasNext();
            }

            @Override
            public InternalRow next() {
                return unsafe.apply(merge(groups.next()));
            }
        };
    }

    /** One tile from the rows of one group (the first row's values where a column is not merged). */
    InternalRow merge(List<InternalRow> run) {
        InternalRow first = run.get(0);
        Object[] out = new Object[plan.types.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = first.get(i, plan.types[i]);
        }
        if (run.size() == 1) {
            return new GenericInternalRow(out);
        }
        for (int c : plan.min) {
            out[c] = extreme(run, c, true);
        }
        for (int c : plan.max) {
            out[c] = extreme(run, c, false);
        }
        for (int[] m : plan.numeric) {
            numeric(run, m, out);
        }
        for (int i = 0; i < plan.sets.length; i++) {
            Set<Object> values = new LinkedHashSet<>();
            for (InternalRow r : run) {
                if (!r.isNullAt(plan.sets[i])) {
                    ArrayData list = r.getArray(plan.sets[i]);
                    for (int j = 0; j < list.numElements(); j++) {
                        values.add(list.isNullAt(j) ? null : list.get(j, plan.setTypes[i]));
                    }
                }
            }
            out[plan.sets[i]] = new GenericArrayData(values.toArray());
        }
        return new GenericInternalRow(out);
    }

    private Long extreme(List<InternalRow> run, int c, boolean least) {
        Long best = null;
        for (InternalRow r : run) {
            if (!r.isNullAt(c)) {
                long v = r.getLong(c);
                if (best == null || (least ? v < best : v > best)) {
                    best = v;
                }
            }
        }
        return best;
    }

    private static void numeric(List<InternalRow> run, int[] m, Object[] out) {
        int n = m[0], s = m[1], lo = m[2], hi = m[3], q = m[4];
        long count = 0;
        Double sum = null, least = null, greatest = null, deviations = null;
        for (InternalRow r : run) {
            count += r.isNullAt(n) ? 0 : r.getLong(n);
            if (s >= 0 && !r.isNullAt(s)) {
                sum = (sum == null ? 0.0 : sum) + r.getDouble(s);
            }
            if (lo >= 0 && !r.isNullAt(lo)) {
                least = least == null ? r.getDouble(lo) : Math.min(least, r.getDouble(lo));
            }
            if (hi >= 0 && !r.isNullAt(hi)) {
                greatest = greatest == null ? r.getDouble(hi) : Math.max(greatest, r.getDouble(hi));
            }
            if (q >= 0 && !r.isNullAt(q)) {
                deviations = (deviations == null ? 0.0 : deviations) + r.getDouble(q);
            }
        }
        out[n] = count;
        if (s >= 0) {
            out[s] = sum;
        }
        if (lo >= 0) {
            out[lo] = least;
        }
        if (hi >= 0) {
            out[hi] = greatest;
        }
        if (q >= 0) {
            out[q] = deviations == null ? null : deviations + spread(run, m, least);
        }
    }

    /** Sum over the parts of count * (part's mean - merged mean)^2, the means shifted by the group's least value. */
    private static double spread(List<InternalRow> run, int[] m, Double least) {
        int n = m[0], s = m[1], lo = m[2], hi = m[3];
        if (least == null || s < 0 || hi < 0) {
            return 0.0;
        }
        double[] shift = new double[run.size()];
        long[] counts = new long[run.size()];
        double weighted = 0.0;
        long total = 0;
        for (int i = 0; i < run.size(); i++) {
            InternalRow r = run.get(i);
            counts[i] = r.isNullAt(n) ? 0 : r.getLong(n);
            if (counts[i] <= 0 || r.isNullAt(lo) || r.isNullAt(hi) || r.isNullAt(s)) {
                counts[i] = 0;
                continue;
            }
            double a = r.getDouble(lo), b = r.getDouble(hi);
            // A part of equal values has its value as mean exactly, whatever the rounding of its sum (as in the sweep).
            shift[i] = (a == b ? a : r.getDouble(s) / counts[i]) - least;
            weighted += counts[i] * shift[i];
            total += counts[i];
        }
        if (total == 0) {
            return 0.0;
        }
        double merged = weighted / total, out = 0.0;
        for (int i = 0; i < run.size(); i++) {
            if (counts[i] > 0) {
                double d = shift[i] - merged;
                out += counts[i] * d * d;
            }
        }
        return out;
    }
}
