package sparkmlops;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Objects;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * Point-in-time window aggregates over one stream sorted by (entity, time): the core of the feature engine.
 *
 * <p>The input holds, per entity, the rows of every source (events, daily tiles of events, attributes) and,
 * for training sets, the points at which features are asked for ({@code _kind} 0). For a point with cutoff
 * {@code c} and a window {@code w}, the rows that count are {@code c - w <= t < c}. Each entity is read once,
 * and every step is a scan or a binary search over its rows, so the cost is linear in rows + points:
 *
 * <ul>
 *   <li>counts are differences of prefix counts (exact integers);
 *   <li>sum, mean, min, max and stddev use the blocks of van Herk / Gil-Werman: time is cut into blocks of
 *       length {@code w}, so {@code [c - w, c)} is a suffix of one block plus a prefix of the next. Both parts
 *       are scans that restart at each block, so no running total is ever subtracted: sums are as exact as a
 *       plain sum, and the variance merges the two parts with Chan's formula from moments shifted by a value
 *       of the part itself (equal values give exactly 0);
 *   <li>distinct counts: an occurrence of a value counts from its time until the next occurrence of the same
 *       value or until it leaves the window, whichever is first; a count is the number of such intervals
 *       started before the cutoff minus those ended before it.
 * </ul>
 *
 * <p>Why in the JVM: the same arithmetic in Python workers cost as much as the sort before it, most of it in
 * handing rows over as Arrow batches (docs/benchmarks.md). Why over Catalyst's {@link InternalRow}s and not
 * {@code Dataset.mapPartitions}: its encoders turn every value of every stream row into a Java object (strings,
 * lists of distinct values) and back, which cost more than the sweep's arithmetic. The plan comes from
 * {@code sparkml_ops/transforms/sweep.py} as JSON; the semantics are those of docs/features.md.
 */
public final class Sweep implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;
    static final long US_PER_DAY = 86_400L * 1_000_000L;
    static final int KIND_POINT = 0;

    private final Plan plan;

    Sweep(Plan plan) {
        this.plan = plan;
    }

    /** One row per point with every feature of {@code planJson}, from {@code ordered} (sorted by keys, time, kind,
     * or by the plan's {@code hash} column alone: see {@link Entities}); called from Python. */
    public static Dataset<Row> apply(Dataset<Row> ordered, String planJson, String outputSchemaJson) {
        Plan.parse(planJson, ordered.schema(), (StructType) DataType.fromJson(outputSchemaJson)); // a bad plan fails here, not in a task
        org.apache.spark.sql.classic.Dataset<Row> in = (org.apache.spark.sql.classic.Dataset<Row>) ordered;
        SweepOperator.Strategy.register(in.sparkSession());
        return org.apache.spark.sql.classic.Dataset$.MODULE$.ofRows(in.sparkSession(),
            SweepOperator.Logical.sweep(in.logicalPlan(), planJson, outputSchemaJson));
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> rows) {
        Entities entities = new Entities(plan, rows);
        UnsafeProjection unsafe = UnsafeProjection.create(plan.out); // the operators above a plan's node expect unsafe rows
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                return entities.hasNext();
            }

            @Override
            public InternalRow next() {
                return unsafe.apply(entities.next());
            }
        };
    }

    // ------------------------------------------------------------------------------------------------ plan

    /** One input of aggregates: the stream column(s) of one measure, by ordinal (-1: absent, its default). */
    static final class MeasurePlan implements Serializable {
        private static final long serialVersionUID = 1L;
        final String kind; // count, numeric or distinct
        final int value;   // the single value (raw rows), or the tile's distinct values
        final int n, s, lo, hi, q; // tile statistics (tiled sources)
        final DataType type; // of the value (of a tile's distinct values: of their elements)

        MeasurePlan(String column, String kind, StructType in) {
            this.kind = kind;
            this.value = ordinal(in, column);
            DataType declared = value < 0 ? null : in.fields()[value].dataType();
            this.type = declared instanceof ArrayType ? ((ArrayType) declared).elementType() : declared;
            this.n = ordinal(in, column + "_n");
            this.s = ordinal(in, column + "_s");
            this.lo = ordinal(in, column + "_lo");
            this.hi = ordinal(in, column + "_hi");
            this.q = ordinal(in, column + "_q");
        }
    }

    /** One aggregate feature: {@code func} of measure {@code measure} over {@code window} µs, written at {@code slot}. */
    static final class OutputPlan implements Serializable {
        private static final long serialVersionUID = 1L;
        final String func;
        final int measure;
        final long window;
        final int slot;

        OutputPlan(String func, int measure, long window, int slot) {
            this.func = func;
            this.measure = measure;
            this.window = window;
            this.slot = slot;
        }

        boolean counts() {
            return func.equals("count") || func.equals("count_distinct") || func.equals("approx_count_distinct");
        }
    }

    static final class EventsPlan implements Serializable {
        private static final long serialVersionUID = 1L;
        final int source;
        final MeasurePlan[] measures;
        final OutputPlan[] outputs;
        final int[] recency; // output slots
        final long lag, horizon;
        final boolean tiled;
        final long[] windows; // distinct windows of the numeric outputs

        EventsPlan(JsonNode node, StructType in, StructType out) {
            source = node.get("source").asInt();
            lag = node.get("lag_us").asLong();
            horizon = node.get("horizon_us").asLong();
            tiled = node.get("tiled").asBoolean();
            JsonNode ms = node.get("measures");
            measures = new MeasurePlan[ms.size()];
            for (int i = 0; i < ms.size(); i++) {
                measures[i] = new MeasurePlan(ms.get(i).get("column").asText(), ms.get(i).get("kind").asText(), in);
            }
            JsonNode os = node.get("outputs");
            outputs = new OutputPlan[os.size()];
            for (int i = 0; i < os.size(); i++) {
                JsonNode o = os.get(i);
                outputs[i] = new OutputPlan(o.get("func").asText(), o.get("measure").asInt(), o.get("window_us").asLong(),
                                            out.fieldIndex(o.get("name").asText()));
            }
            recency = ordinals(node.get("recency"), out);
            windows = Arrays.stream(outputs).filter(o -> measures[o.measure].kind.equals("numeric"))
                            .mapToLong(o -> o.window).distinct().sorted().toArray();
        }
    }

    static final class AttributesPlan implements Serializable {
        private static final long serialVersionUID = 1L;
        final int source;
        final int[] values, slots; // input ordinals, output slots
        final DataType[] types;
        final long lag;

        AttributesPlan(JsonNode node, StructType in, StructType out) {
            source = node.get("source").asInt();
            lag = node.get("lag_us").asLong();
            JsonNode vs = node.get("values");
            values = new int[vs.size()];
            for (int i = 0; i < vs.size(); i++) {
                values[i] = in.fieldIndex(vs.get(i).asText());
            }
            slots = ordinals(vs, out);
            types = types(values, in);
        }
    }

    static final class Plan implements Serializable {
        private static final long serialVersionUID = 1L;
        final int[] keys, keySlots, payload, payloadSlots;
        final DataType[] keyTypes, payloadTypes;
        final DataType kindType, srcType;
        final int time, kind, src, last;
        final int hash; // the column the rows are sorted by instead of keys, time and kind (-1: none; see Entities)
        final EventsPlan[] events;
        final AttributesPlan[] attributes;
        final String[] asOfNames; // a build: the as-of dates asked of every entity (null for a training set)
        final long[] asOfInstants;
        final int width;
        final StructType out;

        private Plan(JsonNode node, StructType in, StructType out) {
            this.out = out;
            JsonNode ks = node.get("keys");
            keys = ordinals(ks, in);
            keySlots = ordinals(ks, out);
            JsonNode pl = node.get("payload");
            JsonNode asOf = node.get("as_of");
            if (asOf.size() > 0) { // the payload is the as-of date column, filled from the plan
                payload = new int[0];
                payloadSlots = ordinals(pl, out);
                asOfNames = new String[asOf.size()];
                asOfInstants = new long[asOf.size()];
                for (int i = 0; i < asOf.size(); i++) {
                    asOfNames[i] = asOf.get(i).get(0).asText();
                    asOfInstants[i] = asOf.get(i).get(1).asLong();
                }
            } else {
                payload = ordinals(pl, in);
                payloadSlots = ordinals(pl, out);
                asOfNames = null;
                asOfInstants = null;
            }
            keyTypes = types(keys, in);
            payloadTypes = types(payload, in);
            time = in.fieldIndex("_t");
            kind = in.fieldIndex("_kind");
            src = ordinal(in, "_src");
            kindType = in.fields()[kind].dataType();
            srcType = src < 0 ? null : in.fields()[src].dataType();
            last = ordinal(in, "_last");
            hash = node.hasNonNull("hash") ? in.fieldIndex(node.get("hash").asText()) : -1;
            if (hash >= 0 && !DataTypes.LongType.equals(in.fields()[hash].dataType())) {
                throw new IllegalArgumentException("the sweep's hash column " + node.get("hash").asText() + " is not a bigint");
            }
            JsonNode es = node.get("events");
            events = new EventsPlan[es.size()];
            for (int i = 0; i < es.size(); i++) {
                events[i] = new EventsPlan(es.get(i), in, out);
            }
            JsonNode as = node.get("attributes");
            attributes = new AttributesPlan[as.size()];
            for (int i = 0; i < as.size(); i++) {
                attributes[i] = new AttributesPlan(as.get(i), in, out);
            }
            width = out.size();
        }

        static Plan parse(String json, StructType in, StructType out) {
            try {
                return new Plan(new ObjectMapper().readTree(json), in, out);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("not a sweep plan: " + e.getMessage(), e);
            }
        }
    }

    static int ordinal(StructType schema, String name) {
        return Arrays.asList(schema.fieldNames()).indexOf(name);
    }

    /** The integer at {@code ordinal} of {@code r}, of whichever integral type the stream gave the column. */
    static long integer(InternalRow r, int ordinal, DataType type) {
        return ((Number) r.get(ordinal, type)).longValue();
    }

    static DataType[] types(int[] ordinals, StructType schema) {
        DataType[] out = new DataType[ordinals.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = schema.fields()[ordinals[i]].dataType();
        }
        return out;
    }

    static int[] ordinals(JsonNode names, StructType schema) {
        int[] out = new int[names.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = schema.fieldIndex(names.get(i).asText());
        }
        return out;
    }

    // -------------------------------------------------------------------------------------------- entities

    /** The output rows of a partition, computed entity by entity (each entity's rows are consecutive).
     *
     * <p>With a {@code hash} column (a hash of the keys), the rows come sorted by it alone: the rows of an entity are
     * consecutive, but not in time order, and entities whose keys share a hash are mixed. Each run of one hash is
     * split by keys here and each entity's rows sorted by time and kind (a stable sort, as few as an entity has).
     * Why: Spark sorts one bigint by radix, with no comparison of rows; a sort by keys, time and kind compares rows
     * with equal prefixes (one entity's) one by one, which cost twice the shuffle it follows (docs/benchmarks.md). */
    static final class Entities implements Iterator<InternalRow> {
        private final Plan plan;
        private final Runs runs;
        private final java.util.ArrayDeque<List<InternalRow>> pending = new java.util.ArrayDeque<>();
        private final Comparator<InternalRow> byTime;
        private List<Object[]> ready = Collections.emptyList();
        private int readyAt;

        Entities(Plan plan, Iterator<InternalRow> in) {
            this.plan = plan;
            this.runs = plan.hash < 0 ? new Runs(in, plan.keys, plan.keyTypes)
                : new Runs(in, new int[] {plan.hash}, new DataType[] {DataTypes.LongType});
            this.byTime = Comparator.<InternalRow>comparingLong(r -> r.getLong(plan.time))
                .thenComparingLong(r -> integer(r, plan.kind, plan.kindType));
        }

        @Override
        public boolean hasNext() {
            while (readyAt >= ready.size()) {
                if (pending.isEmpty()) {
                    if (!runs.hasNext()) {
                        return false;
                    }
                    split(runs.next());
                }
                ready = new EntitySweep(plan, pending.poll()).compute();
                readyAt = 0;
            }
            return true;
        }

        // One run -> its entities, each sorted by time and kind (without a hash column the run is one entity, sorted).
        // Keys rarely share a hash: check for one entity first, so the common run builds no key list or map.
        private void split(List<InternalRow> run) {
            if (plan.hash < 0) {
                pending.add(run);
                return;
            }
            if (oneEntity(run)) {
                run.sort(byTime);
                pending.add(run);
                return;
            }
            Map<List<Object>, List<InternalRow>> entities = new LinkedHashMap<>();
            for (InternalRow r : run) {
                List<Object> key = new ArrayList<>(plan.keys.length);
                for (int k = 0; k < plan.keys.length; k++) {
                    key.add(r.get(plan.keys[k], plan.keyTypes[k]));
                }
                entities.computeIfAbsent(key, x -> new ArrayList<>()).add(r);
            }
            for (List<InternalRow> rows : entities.values()) {
                rows.sort(byTime);
                pending.add(rows);
            }
        }

        private boolean oneEntity(List<InternalRow> run) {
            InternalRow first = run.get(0);
            for (int i = 1; i < run.size(); i++) {
                if (!Runs.same(first, run.get(i), plan.keys, plan.keyTypes)) {
                    return false;
                }
            }
            return true;
        }

        @Override
        public InternalRow next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            return new GenericInternalRow(ready.get(readyAt++));
        }
    }

    /** The runs of consecutive rows with equal values in {@code columns} (NULLs equal, as in the sort), each row copied:
     * the sort hands out one reused row. The list of a run is reused by the next one. */
    static final class Runs implements Iterator<List<InternalRow>> {
        private final Iterator<InternalRow> in;
        private final int[] columns;
        private final DataType[] types;
        private final List<InternalRow> run = new ArrayList<>();
        private InternalRow next; // first row of the next run

        Runs(Iterator<InternalRow> in, int[] columns, DataType[] types) {
            this.in = in;
            this.columns = columns;
            this.types = types;
            this.next = in.hasNext() ? in.next().copy() : null;
        }

        @Override
        public boolean hasNext() {
            return next != null;
        }

        @Override
        public List<InternalRow> next() {
            if (next == null) {
                throw new NoSuchElementException();
            }
            run.clear();
            run.add(next);
            next = null;
            while (in.hasNext()) {
                InternalRow row = in.next().copy();
                if (!same(run.get(0), row, columns, types)) {
                    next = row;
                    break;
                }
                run.add(row);
            }
            return run;
        }

        static boolean same(InternalRow a, InternalRow b, int[] columns, DataType[] types) {
            for (int i = 0; i < columns.length; i++) {
                if (!Objects.equals(a.get(columns[i], types[i]), b.get(columns[i], types[i]))) {
                    return false;
                }
            }
            return true;
        }
    }

    /** Every feature at every point of one entity. */
    static final class EntitySweep {
        private final Plan plan;
        private final List<InternalRow> rows;
        private final InternalRow first;
        private final long[] instants; // the points' instants
        private final InternalRow[] pointRows; // a training set's point rows (null for a build)
        private final Object[][] out;
        private final boolean[] present;

        EntitySweep(Plan plan, List<InternalRow> rows) {
            this.plan = plan;
            this.rows = rows;
            this.first = rows.get(0);
            if (plan.asOfInstants != null) {
                instants = plan.asOfInstants;
                pointRows = null;
            } else {
                List<InternalRow> points = new ArrayList<>();
                for (InternalRow r : rows) {
                    if (kind(r) == KIND_POINT) {
                        points.add(r);
                    }
                }
                pointRows = points.toArray(new InternalRow[0]);
                instants = new long[pointRows.length];
                for (int p = 0; p < instants.length; p++) {
                    instants[p] = pointRows[p].getLong(plan.time);
                }
            }
            out = new Object[instants.length][plan.width];
            present = new boolean[instants.length];
        }

        List<Object[]> compute() {
            if (instants.length == 0) {
                return Collections.emptyList();
            }
            for (int p = 0; p < instants.length; p++) {
                InternalRow keysOf = pointRows == null ? first : pointRows[p];
                for (int k = 0; k < plan.keys.length; k++) {
                    out[p][plan.keySlots[k]] = keysOf.get(plan.keys[k], plan.keyTypes[k]);
                }
                if (pointRows == null) {
                    out[p][plan.payloadSlots[0]] = UTF8String.fromString(plan.asOfNames[p]);
                } else {
                    for (int k = 0; k < plan.payload.length; k++) {
                        out[p][plan.payloadSlots[k]] = pointRows[p].get(plan.payload[k], plan.payloadTypes[k]);
                    }
                }
            }
            for (EventsPlan ep : plan.events) {
                new EventsSweep(ep, of(ep.source), this).compute();
            }
            for (AttributesPlan ap : plan.attributes) {
                attributes(ap, of(ap.source));
            }
            List<Object[]> result = new ArrayList<>(instants.length);
            for (int p = 0; p < instants.length; p++) {
                if (pointRows != null || present[p]) { // a build has a row only for entities some source knows
                    result.add(out[p]);
                }
            }
            return result;
        }

        private int kind(InternalRow r) {
            return (int) integer(r, plan.kind, plan.kindType);
        }

        /** The entity's rows of source {@code source}, in time order. */
        private List<InternalRow> of(int source) {
            List<InternalRow> picked = new ArrayList<>();
            if (plan.src < 0) {
                return picked;
            }
            for (InternalRow r : rows) {
                if (kind(r) != KIND_POINT && !r.isNullAt(plan.src) && integer(r, plan.src, plan.srcType) == source) {
                    picked.add(r);
                }
            }
            return picked;
        }

        /** The values of the latest row known strictly before each point's cutoff (NULL without one). */
        private void attributes(AttributesPlan ap, List<InternalRow> known) {
            long[] t = times(known, plan.time);
            for (int p = 0; p < instants.length; p++) {
                int last = lowerBound(t, instants[p] - ap.lag) - 1;
                if (last >= 0) {
                    present[p] = true;
                    for (int v = 0; v < ap.values.length; v++) {
                        out[p][ap.slots[v]] = known.get(last).get(ap.values[v], ap.types[v]);
                    }
                }
            }
        }
    }

    /** Every aggregate and the recency of one events source at every point of one entity. */
    static final class EventsSweep {
        private final EventsPlan ep;
        private final List<InternalRow> rows;
        private final int n;
        private final long[] t, cutoff;
        private final int[] hi; // per point: index of the first row at or after the cutoff
        private final Object[][] out;
        private final EntitySweep entity;
        private final Map<Long, int[]> starts = new HashMap<>();

        EventsSweep(EventsPlan ep, List<InternalRow> rows, EntitySweep entity) {
            this.ep = ep;
            this.rows = rows;
            this.entity = entity;
            this.out = entity.out;
            this.n = rows.size();
            this.t = times(rows, entity.plan.time);
            this.cutoff = new long[entity.instants.length];
            this.hi = new int[cutoff.length];
            for (int p = 0; p < cutoff.length; p++) {
                cutoff[p] = entity.instants[p] - ep.lag;
                hi[p] = lowerBound(t, cutoff[p]);
            }
        }

        /** Per point: index of the first row at or after its cutoff minus {@code window} (the window's start). */
        private int[] start(long window) {
            return starts.computeIfAbsent(window, w -> {
                int[] lo = new int[cutoff.length];
                for (int p = 0; p < lo.length; p++) {
                    lo[p] = lowerBound(t, cutoff[p] - w);
                }
                return lo;
            });
        }

        void compute() {
            int[] horizon = start(ep.horizon);
            long[] newest = ep.recency.length > 0 ? newest() : null;
            for (int p = 0; p < cutoff.length; p++) {
                boolean known = hi[p] > horizon[p];
                entity.present[p] |= known;
                Double days = known && newest != null ? (double) (cutoff[p] + ep.lag - newest[hi[p] - 1]) / US_PER_DAY : null;
                for (int slot : ep.recency) {
                    out[p][slot] = days;
                }
            }
            for (int m = 0; m < ep.measures.length; m++) {
                MeasurePlan measure = ep.measures[m];
                if (measure.kind.equals("distinct")) {
                    distinct(m, measure);
                } else if (measure.kind.equals("count")) {
                    long[] prefix = prefix(countInputs(measure));
                    for (OutputPlan o : ep.outputs) {
                        if (o.measure == m) {
                            int[] lo = start(o.window);
                            for (int p = 0; p < cutoff.length; p++) {
                                out[p][o.slot] = prefix[hi[p]] - prefix[lo[p]];
                            }
                        }
                    }
                }
            }
            Numeric[] numeric = new Numeric[ep.measures.length];
            for (int m = 0; m < ep.measures.length; m++) {
                if (ep.measures[m].kind.equals("numeric")) {
                    numeric[m] = new Numeric(rows, ep.measures[m], ep.tiled);
                }
            }
            for (long window : ep.windows) {
                Blocks blocks = null;
                for (int m = 0; m < numeric.length; m++) {
                    if (numeric[m] == null) {
                        continue;
                    }
                    List<OutputPlan> outs = new ArrayList<>();
                    for (OutputPlan o : ep.outputs) {
                        if (o.measure == m && o.window == window) {
                            outs.add(o);
                        }
                    }
                    if (outs.isEmpty()) {
                        continue;
                    }
                    if (blocks == null) {
                        blocks = new Blocks(t, window);
                    }
                    numericOutputs(numeric[m], outs, blocks, window);
                }
            }
        }

        /** Per row: the time of the newest event so far (tiles: the running max of {@code _last}, as tiles of one time may come from two days). */
        private long[] newest() {
            if (!ep.tiled) {
                return t;
            }
            int col = entity.plan.last;
            long[] out = new long[n];
            long best = Long.MIN_VALUE;
            for (int i = 0; i < n; i++) {
                InternalRow r = rows.get(i);
                if (!r.isNullAt(col)) {
                    best = Math.max(best, r.getLong(col));
                }
                out[i] = best;
            }
            return out;
        }

        private long[] countInputs(MeasurePlan measure) {
            long[] c = new long[n];
            for (int i = 0; i < n; i++) {
                InternalRow r = rows.get(i);
                if (ep.tiled) {
                    c[i] = measure.n < 0 || r.isNullAt(measure.n) ? 0 : r.getLong(measure.n);
                } else {
                    c[i] = r.isNullAt(measure.value) ? 0 : 1;
                }
            }
            return c;
        }

        private void numericOutputs(Numeric v, List<OutputPlan> outs, Blocks b, long window) {
            int[] lo = start(window);
            double[] sumF = b.scan(v.s, 0.0, Op.ADD, false), sumB = b.scan(v.s, 0.0, Op.ADD, true);
            double[] minF = b.scan(v.lo, Double.POSITIVE_INFINITY, Op.MIN, false);
            double[] minB = b.scan(v.lo, Double.POSITIVE_INFINITY, Op.MIN, true);
            double[] maxF = b.scan(v.hi, Double.NEGATIVE_INFINITY, Op.MAX, false);
            double[] maxB = b.scan(v.hi, Double.NEGATIVE_INFINITY, Op.MAX, true);
            long[] prefix = prefix(v.n);
            boolean needsStddev = outs.stream().anyMatch(o -> o.func.equals("stddev"));
            Moments fwd = needsStddev ? new Moments(v, b, true) : null;
            Moments bwd = needsStddev ? new Moments(v, b, false) : null;
            for (int p = 0; p < cutoff.length; p++) {
                int f = hi[p] - 1, g = lo[p];
                // The cutoff's block holds the forward part (rows before the cutoff), the block before it the
                // backward part (rows from the window's start on); exactly w apart, so they are consecutive blocks.
                boolean fwdOk = f >= 0 && b.block[f] == Math.floorDiv(cutoff[p], window);
                boolean bwdOk = g < n && b.block[g] == Math.floorDiv(cutoff[p] - window, window);
                long nF = fwdOk ? prefix[f + 1] - prefix[b.start[b.seg[f]]] : 0;
                long nB = bwdOk ? prefix[b.end[b.seg[g]]] - prefix[g] : 0;
                long total = nF + nB;
                double sum = (fwdOk ? sumF[f] : 0.0) + (bwdOk ? sumB[g] : 0.0);
                double min = Math.min(fwdOk ? minF[f] : Double.POSITIVE_INFINITY, bwdOk ? minB[g] : Double.POSITIVE_INFINITY);
                double max = Math.max(fwdOk ? maxF[f] : Double.NEGATIVE_INFINITY, bwdOk ? maxB[g] : Double.NEGATIVE_INFINITY);
                for (OutputPlan o : outs) {
                    Object value;
                    switch (o.func) {
                        case "count": value = total; break;
                        case "sum": value = sum; break;
                        case "mean": value = total < 1 ? null : sum / total; break;
                        case "min": value = total < 1 ? null : min; break;
                        case "max": value = total < 1 ? null : max; break;
                        case "stddev":
                            value = total < 2 ? null : min == max ? 0.0 : stddev(fwd, bwd, fwdOk ? f : -1, bwdOk ? g : -1, nF, nB);
                            break;
                        default: throw new IllegalStateException("not a numeric aggregate: " + o.func);
                    }
                    out[p][o.slot] = value;
                }
            }
        }

        /** Sample standard deviation of the two parts, merged with Chan's formula. */
        private static double stddev(Moments fwd, Moments bwd, int f, int g, long nF, long nB) {
            double nf = Math.max(nF, 1), nb = Math.max(nB, 1);
            double a1 = f >= 0 ? fwd.s1[f] : 0.0, a2 = f >= 0 ? fwd.s2[f] : 0.0;
            double b1 = g >= 0 ? bwd.s1[g] : 0.0, b2 = g >= 0 ? bwd.s2[g] : 0.0;
            double meanF = fwd.ref[Math.max(f, 0)] + a1 / nf, meanB = bwd.ref[Math.max(g, 0)] + b1 / nb;
            double qF = Math.max(a2 - a1 * a1 / nf, 0.0), qB = Math.max(b2 - b1 * b1 / nb, 0.0);
            long total = nF + nB;
            double delta = nF > 0 && nB > 0 ? meanB - meanF : 0.0;
            double q = qF + qB + delta * delta * nF * nB / Math.max(total, 1);
            return Math.sqrt(q / Math.max(total - 1, 1));
        }

        /** Exact distinct counts: occurrence intervals [t, min(next occurrence, t + w)) alive at the cutoff. */
        private void distinct(int m, MeasurePlan measure) {
            List<Long> enterList = new ArrayList<>();
            List<Long> nextList = new ArrayList<>();
            Map<Object, Long> nextSeen = new HashMap<>();
            // From the newest row back, so each occurrence learns when its value occurs next.
            for (int i = n - 1; i >= 0; i--) {
                InternalRow r = rows.get(i);
                if (r.isNullAt(measure.value)) {
                    continue;
                }
                ArrayData tile = ep.tiled ? r.getArray(measure.value) : null;
                int count = ep.tiled ? tile.numElements() : 1;
                for (int j = 0; j < count; j++) {
                    Object value = ep.tiled ? (tile.isNullAt(j) ? null : tile.get(j, measure.type)) : r.get(measure.value, measure.type);
                    if (value == null) {
                        continue;
                    }
                    Long nxt = nextSeen.put(value, t[i]);
                    enterList.add(t[i]);
                    nextList.add(nxt == null ? Long.MAX_VALUE : nxt);
                }
            }
            int k = enterList.size();
            long[] enter = new long[k];
            for (int i = 0; i < k; i++) {
                enter[i] = enterList.get(k - 1 - i); // collected newest first: reversed, they are in time order
            }
            for (OutputPlan o : ep.outputs) {
                if (o.measure != m) {
                    continue;
                }
                long[] leave = new long[k];
                for (int i = 0; i < k; i++) {
                    long start = enterList.get(i);
                    leave[i] = Math.min(nextList.get(i), start + o.window);
                }
                Arrays.sort(leave);
                for (int p = 0; p < cutoff.length; p++) {
                    out[p][o.slot] = (long) (lowerBound(enter, cutoff[p]) - lowerBound(leave, cutoff[p]));
                }
            }
        }
    }

    /** Per row of one numeric measure: count, sum, min, max, mean and squared deviations (a NULL value counts 0). */
    static final class Numeric {
        final long[] n;
        final double[] s, lo, hi, mean, m2;

        Numeric(List<InternalRow> rows, MeasurePlan m, boolean tiled) {
            int size = rows.size();
            n = new long[size];
            s = new double[size];
            lo = new double[size];
            hi = new double[size];
            mean = new double[size];
            m2 = new double[size];
            for (int i = 0; i < size; i++) {
                InternalRow r = rows.get(i);
                if (tiled) {
                    n[i] = stat(r, m.n, 0);
                    s[i] = stat(r, m.s, 0.0);
                    lo[i] = stat(r, m.lo, Double.POSITIVE_INFINITY);
                    hi[i] = stat(r, m.hi, Double.NEGATIVE_INFINITY);
                    m2[i] = stat(r, m.q, 0.0);
                    // A tile of equal values has its value as mean exactly, whatever the rounding of its sum.
                    mean[i] = n[i] > 0 ? (lo[i] == hi[i] ? lo[i] : s[i] / Math.max(n[i], 1)) : 0.0;
                } else if (r.isNullAt(m.value)) {
                    lo[i] = Double.POSITIVE_INFINITY;
                    hi[i] = Double.NEGATIVE_INFINITY;
                } else {
                    double v = r.getDouble(m.value);
                    n[i] = 1;
                    s[i] = lo[i] = hi[i] = mean[i] = v;
                }
            }
        }

        private static double stat(InternalRow r, int ordinal, double fill) {
            return ordinal < 0 || r.isNullAt(ordinal) ? fill : r.getDouble(ordinal);
        }

        private static long stat(InternalRow r, int ordinal, long fill) {
            return ordinal < 0 || r.isNullAt(ordinal) ? fill : r.getLong(ordinal);
        }
    }

    enum Op { ADD, MIN, MAX }

    /** The rows of one entity cut into blocks of one window length: block number, segment of each row, segment bounds. */
    static final class Blocks {
        final long[] block;
        final int[] seg, start, end; // start/end: per segment, first row and one past the last

        Blocks(long[] t, long window) {
            int n = t.length;
            block = new long[n];
            seg = new int[n];
            int[] st = new int[n + 1];
            int segs = 0;
            for (int i = 0; i < n; i++) {
                block[i] = Math.floorDiv(t[i], window);
                if (i == 0 || block[i] != block[i - 1]) {
                    st[segs++] = i;
                }
                seg[i] = segs - 1;
            }
            start = Arrays.copyOf(st, segs);
            end = new int[segs];
            for (int k = 0; k < segs; k++) {
                end[k] = k + 1 < segs ? start[k + 1] : n;
            }
        }

        /** Inclusive scan of {@code op} within each block, forward or from the block's end. */
        double[] scan(double[] values, double neutral, Op op, boolean reverse) {
            double[] out = new double[values.length];
            for (int k = 0; k < start.length; k++) {
                double acc = neutral;
                if (reverse) {
                    for (int i = end[k] - 1; i >= start[k]; i--) {
                        out[i] = acc = apply(op, acc, values[i]);
                    }
                } else {
                    for (int i = start[k]; i < end[k]; i++) {
                        out[i] = acc = apply(op, acc, values[i]);
                    }
                }
            }
            return out;
        }

        private static double apply(Op op, double a, double b) {
            switch (op) {
                case ADD: return a + b;
                case MIN: return Math.min(a, b);
                default: return Math.max(a, b);
            }
        }
    }

    /** Per row: the reference value K of its block part and the scanned moments sum n(mean-K), sum m2 + n(mean-K)^2. */
    static final class Moments {
        final double[] ref, s1, s2;

        Moments(Numeric v, Blocks b, boolean forward) {
            int n = v.n.length;
            ref = new double[n];
            double[] d1 = new double[n], d2 = new double[n];
            for (int k = 0; k < b.start.length; k++) {
                // K: the mean of the block's first row with values (forward) or its last (backward)
                double k0 = 0.0;
                if (forward) {
                    for (int i = b.start[k]; i < b.end[k]; i++) {
                        if (v.n[i] > 0) { k0 = v.mean[i]; break; }
                    }
                } else {
                    for (int i = b.end[k] - 1; i >= b.start[k]; i--) {
                        if (v.n[i] > 0) { k0 = v.mean[i]; break; }
                    }
                }
                for (int i = b.start[k]; i < b.end[k]; i++) {
                    ref[i] = k0;
                    double d = v.n[i] > 0 ? v.mean[i] - k0 : 0.0;
                    d1[i] = v.n[i] * d;
                    d2[i] = v.m2[i] + v.n[i] * d * d;
                }
            }
            s1 = b.scan(d1, 0.0, Op.ADD, !forward);
            s2 = b.scan(d2, 0.0, Op.ADD, !forward);
        }
    }

    // ----------------------------------------------------------------------------------------------- helpers

    static long[] times(List<InternalRow> rows, int ordinal) {
        long[] t = new long[rows.size()];
        for (int i = 0; i < t.length; i++) {
            t[i] = rows.get(i).getLong(ordinal);
        }
        return t;
    }

    static long[] prefix(long[] values) {
        long[] out = new long[values.length + 1];
        for (int i = 0; i < values.length; i++) {
            out[i + 1] = out[i] + values[i];
        }
        return out;
    }

    /** Index of the first element of sorted {@code a} that is >= {@code key}. */
    static int lowerBound(long[] a, long key) {
        int lo = 0, hi = a.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (a[mid] < key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }
}
