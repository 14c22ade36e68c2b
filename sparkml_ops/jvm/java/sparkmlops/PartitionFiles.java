package sparkmlops;

import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.catalyst.catalog.CatalogTablePartition;
import org.apache.spark.sql.classic.SparkSession;

import scala.Option;

/**
 * The data files of some partitions of a Hive table, listed in one call from Python.
 *
 * <p>Why in the JVM: listing from Python costs a py4j round trip for every partition and every file attribute,
 * about 1,400 of them for the 90 source days of a nightly feature build (0.47 s, a tenth of the build). Here it
 * is one call that returns text.
 */
public final class PartitionFiles {
    private PartitionFiles() {
    }

    /**
     * One line per partition {@code column=value} of {@code database.table} whose value is among {@code values}
     * (newline-separated): the value alone; then one line per data file of it: value, name, length in bytes and
     * modification time in ms, tab-separated. Hidden files ({@code _SUCCESS}, {@code .crc}) are left out. Values
     * and names are URL-encoded (UTF-8), so no tab or newline inside them can break a line.
     */
    public static String list(SparkSession spark, String database, String table, String column, String values)
            throws IOException {
        Set<String> wanted = new HashSet<>(Arrays.asList(values.split("\n")));
        Configuration conf = spark.sessionState().newHadoopConf();
        StringBuilder out = new StringBuilder();
        scala.collection.Iterator<CatalogTablePartition> parts =
                spark.sessionState().catalog().externalCatalog().listPartitions(database, table, Option.empty()).iterator();
        while (parts.hasNext()) {
            CatalogTablePartition part = parts.next();
            Option<String> value = part.spec().get(column);
            if (value.isEmpty() || !wanted.contains(value.get())) {
                continue;
            }
            String encoded = encode(value.get());
            out.append(encoded).append('\n');
            Path dir = new Path(part.location());
            FileSystem fs = dir.getFileSystem(conf);
            for (FileStatus file : fs.listStatus(dir)) {
                String name = file.getPath().getName();
                if (!file.isFile() || name.startsWith("_") || name.startsWith(".")) {
                    continue;
                }
                out.append(encoded).append('\t').append(encode(name)).append('\t').append(file.getLen()).append('\t')
                        .append(file.getModificationTime()).append('\n');
            }
        }
        return out.toString();
    }

    private static String encode(String text) {
        return URLEncoder.encode(text, StandardCharsets.UTF_8);
    }
}
