// The local test cluster's HDFS and YARN in one JVM: MiniDFSCluster (1 DataNode, WebHDFS) and
// MiniYARNCluster (1 NodeManager) on fixed loopback ports. Compiled and started by scripts/cluster;
// it writes core/hdfs/yarn-site.xml, uploads the Spark jars archive, prints READY and runs until killed.

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.security.Groups;
import org.apache.hadoop.yarn.api.records.NodeReport;
import org.apache.hadoop.yarn.api.records.NodeState;
import org.apache.hadoop.yarn.client.api.YarnClient;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

public final class MiniCluster {
  private MiniCluster() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = parse(argv);
    File state = new File(a.get("state")).getAbsoluteFile();
    File confDir = new File(a.get("conf")).getAbsoluteFile();
    String host = "127.0.0.1";

    Configuration hdfsConf = new HdfsConfiguration();
    File dfsBase = new File(state, "dfs");
    // Reuse the name/data dirs of an earlier run, so HDFS content (and the Spark archive) survives restarts.
    boolean format = !new File(dfsBase, "name-0-1/current/VERSION").isFile();
    hdfsConf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, dfsBase.getPath());
    hdfsConf.setInt("dfs.replication", 1);
    hdfsConf.setBoolean("dfs.webhdfs.enabled", true);
    // The test edge nodes of scripts/sshd-hosts (network namespaces behind the bridge smo-br0) reach the
    // NameNode RPC and the DataNode transfer port through the bridge address, so these two listen on all
    // interfaces: Hadoop takes one bind host per server, not 127.0.0.1 plus the bridge, and the bridge may
    // not exist yet. Acceptable only because this is a throw-away test cluster without authentication.
    // Every address a client is told (rpc-address, datanode IP, hdfs-site.xml) stays 127.0.0.1; HTTP and
    // the DataNode IPC port stay on loopback.
    hdfsConf.set("dfs.namenode.rpc-bind-host", "0.0.0.0");
    hdfsConf.set("dfs.namenode.http-bind-host", host);
    hdfsConf.set("dfs.datanode.address", "0.0.0.0:" + a.get("dn-port"));
    hdfsConf.set("dfs.datanode.http.address", host + ":" + a.get("dn-http-port"));
    hdfsConf.set("dfs.datanode.ipc.address", host + ":" + a.get("dn-ipc-port"));
    // Clients use the DataNode's registered IP (127.0.0.1) unless dfs.client.use.datanode.hostname is set;
    // the edge nodes' client sets it and resolves this name to the bridge address. On this host "localhost"
    // is loopback, so WebHDFS redirects (which name the DataNode by hostname) keep working here.
    hdfsConf.set("dfs.datanode.hostname", "localhost");
    // Permissions stay on; the OS user and the framework's 'sparkml' user are superusers, any other name is not.
    hdfsConf.set("hadoop.user.group.static.mapping.overrides",
        System.getProperty("user.name") + "=supergroup;" + a.getOrDefault("hdfs-user", "sparkml") + "=supergroup");
    hdfsConf.set("hadoop.proxyuser." + System.getProperty("user.name") + ".hosts", "*");
    hdfsConf.set("hadoop.proxyuser." + System.getProperty("user.name") + ".groups", "*");
    // Group lookups are a JVM-wide singleton: load it from this configuration before any daemon asks.
    Groups.getUserToGroupsMappingServiceWithLoadedConfiguration(hdfsConf);
    MiniDFSCluster dfs = new MiniDFSCluster.Builder(hdfsConf)
        .numDataNodes(1)
        .nameNodePort(Integer.parseInt(a.get("nn-port")))
        .nameNodeHttpPort(Integer.parseInt(a.get("nn-http-port")))
        .format(format)
        .manageNameDfsDirs(true)
        .manageDataDfsDirs(true)
        // Keep the DataNode addresses and hostname set above instead of MiniDFSCluster's 127.0.0.1:0.
        .checkDataNodeAddrConfig(true)
        .checkDataNodeHostConfig(true)
        .build();
    dfs.waitActive();
    dfs.waitClusterUp();
    long safeModeDeadline = System.currentTimeMillis() + 120_000;
    while (dfs.getNameNode().isInSafeMode()) {
      if (System.currentTimeMillis() > safeModeDeadline) throw new IllegalStateException("NameNode stayed in safe mode");
      Thread.sleep(200);
    }
    String defaultFs = "hdfs://" + host + ":" + a.get("nn-port");
    log("hdfs up at " + defaultFs + " (formatted: " + format + ")");

    YarnConfiguration yarnConf = new YarnConfiguration();
    yarnConf.set("fs.defaultFS", defaultFs);
    yarnConf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_FIXED_PORTS, true);
    yarnConf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_CONTROL_RESOURCE_MONITORING, false);
    yarnConf.set(YarnConfiguration.RM_HOSTNAME, host);
    yarnConf.set(YarnConfiguration.RM_ADDRESS, host + ":" + a.get("rm-port"));
    yarnConf.set(YarnConfiguration.RM_SCHEDULER_ADDRESS, host + ":" + a.get("rm-scheduler-port"));
    yarnConf.set(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, host + ":" + a.get("rm-tracker-port"));
    yarnConf.set(YarnConfiguration.RM_ADMIN_ADDRESS, host + ":" + a.get("rm-admin-port"));
    yarnConf.set(YarnConfiguration.RM_WEBAPP_ADDRESS, host + ":" + a.get("rm-web-port"));
    yarnConf.set("yarn.nodemanager.hostname", host);
    // MiniYARNCluster gives the NodeManager ephemeral ports and takes its memory from the minicluster key.
    yarnConf.setInt(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, Integer.parseInt(a.get("nm-memory-mb")));
    yarnConf.setInt(YarnConfiguration.NM_PMEM_MB, Integer.parseInt(a.get("nm-memory-mb")));
    yarnConf.setInt(YarnConfiguration.NM_VCORES, Integer.parseInt(a.get("nm-vcores")));
    yarnConf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 256);
    yarnConf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, Integer.parseInt(a.get("nm-memory-mb")));
    yarnConf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_VCORES, Integer.parseInt(a.get("nm-vcores")));
    // Python workers and JVMs share the box with other test runs: the NM must not kill containers for vmem.
    yarnConf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
    yarnConf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    yarnConf.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 99.9f);
    // hadoop-client-minicluster ships no capacity-scheduler.xml: without these keys there is no queue.
    yarnConf.set("yarn.scheduler.capacity.root.queues", "default");
    yarnConf.set("yarn.scheduler.capacity.root.default.capacity", "100");
    yarnConf.set("yarn.scheduler.capacity.root.default.maximum-capacity", "100");
    yarnConf.set("yarn.scheduler.capacity.root.default.state", "RUNNING");
    yarnConf.set("yarn.scheduler.capacity.root.default.acl_submit_applications", "*");
    yarnConf.set("yarn.scheduler.capacity.root.default.acl_administer_queue", "*");
    // Several test suites submit at once; the default 10% would let only one ApplicationMaster run.
    yarnConf.set("yarn.scheduler.capacity.maximum-am-resource-percent", "0.5");
    MiniYARNCluster yarn = new MiniYARNCluster("yarn", 1, 1, 1);
    yarn.init(yarnConf);
    yarn.start();
    Configuration live = yarn.getConfig();
    // Right after start() the RM address can still read :0; wait for the bound one.
    long deadline = System.currentTimeMillis() + 60_000;
    while (live.get(YarnConfiguration.RM_ADDRESS, "").endsWith(":0")) {
      if (System.currentTimeMillis() > deadline) throw new IllegalStateException("RM address stayed :0");
      Thread.sleep(100);
    }
    waitForNodeManager(live, deadline + 60_000);
    log("yarn up at " + live.get(YarnConfiguration.RM_ADDRESS));

    confDir.mkdirs();
    Configuration core = new Configuration(false);
    core.set("fs.defaultFS", defaultFs);
    core.set("hadoop.proxyuser." + System.getProperty("user.name") + ".hosts", "*");
    core.set("hadoop.proxyuser." + System.getProperty("user.name") + ".groups", "*");
    write(core, new File(confDir, "core-site.xml"));
    Configuration hdfsSite = new Configuration(false);
    hdfsSite.set("dfs.replication", "1");
    hdfsSite.set("dfs.namenode.rpc-address", host + ":" + a.get("nn-port"));
    hdfsSite.set("dfs.namenode.http-address", host + ":" + a.get("nn-http-port"));
    hdfsSite.set("dfs.webhdfs.enabled", "true");
    write(hdfsSite, new File(confDir, "hdfs-site.xml"));
    Configuration yarnSite = new Configuration(false);
    for (String key : new String[] {
        YarnConfiguration.RM_HOSTNAME, YarnConfiguration.RM_ADDRESS, YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS, YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB,
        YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB}) {
      yarnSite.set(key, live.get(key));
    }
    write(yarnSite, new File(confDir, "yarn-site.xml"));

    String archive = a.get("spark-archive");
    if (archive != null && !archive.isEmpty()) {
      uploadOnce(dfs.getFileSystem(), new File(archive), new Path(a.get("spark-archive-dest")));
    }

    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      log("stopping");
      yarn.stop();
      dfs.shutdown();
    }));
    System.out.println("READY");
    System.out.flush();
    Thread.currentThread().join();
  }

  private static void waitForNodeManager(Configuration conf, long deadline) throws Exception {
    YarnClient client = YarnClient.createYarnClient();
    client.init(conf);
    client.start();
    try {
      while (true) {
        for (NodeReport node : client.getNodeReports(NodeState.RUNNING)) {
          if (node.getCapability().getMemorySize() > 0) return;
        }
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("no NodeManager registered");
        Thread.sleep(200);
      }
    } finally {
      client.stop();
    }
  }

  private static void uploadOnce(FileSystem fs, File local, Path dest) throws IOException {
    if (fs.exists(dest)) {
      FileStatus st = fs.getFileStatus(dest);
      if (st.getLen() == local.length()) {
        log("spark archive already on hdfs: " + dest);
        return;
      }
    }
    fs.mkdirs(dest.getParent());
    Path tmp = dest.suffix("._COPYING_");
    fs.copyFromLocalFile(false, true, new Path(local.toURI()), tmp);
    fs.delete(dest, false);
    fs.rename(tmp, dest);
    log("uploaded spark archive to " + dest + " (" + local.length() / (1 << 20) + " MB)");
  }

  private static void write(Configuration conf, File file) throws IOException {
    File tmp = new File(file.getPath() + ".tmp");
    try (OutputStream out = new FileOutputStream(tmp)) {
      conf.writeXml(out);
    }
    if (!tmp.renameTo(file)) throw new IOException("cannot rename " + tmp + " to " + file);
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> out = new LinkedHashMap<>();
    for (String arg : argv) {
      int eq = arg.indexOf('=');
      if (!arg.startsWith("--") || eq < 0) throw new IllegalArgumentException("expected --key=value, got " + arg);
      out.put(arg.substring(2, eq), arg.substring(eq + 1));
    }
    return out;
  }

  private static void log(String msg) {
    System.err.println("minicluster: " + msg);
    System.err.flush();
  }
}
