// The local test cluster's HDFS and YARN in one JVM: MiniDFSCluster (1 DataNode, WebHDFS) and
// MiniYARNCluster (1 NodeManager) on fixed loopback ports. Compiled and started by scripts/cluster;
// it writes core/hdfs/yarn-site.xml, uploads the Spark jars archive, prints READY and runs until killed.
// With --security=kerberos (the default of scripts/cluster) every daemon logs in from its keytab, RPC needs
// Kerberos, WebHDFS needs SPNEGO, and HDFS and YARN each run under their own principal (see secure()).

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.security.PrivilegedExceptionAction;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.security.Groups;
import org.apache.hadoop.security.UserGroupInformation;
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

    boolean kerberos = "kerberos".equals(a.getOrDefault("security", "simple"));
    Configuration hdfsConf = new HdfsConfiguration();
    if (kerberos) secure(hdfsConf, a);
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
    // Permissions stay on; the OS user and the framework's user (sparkml, or svc-sparkml with Kerberos) are
    // superusers, any other name (the Kerberos user 'analyst' among them) is not.
    hdfsConf.set("hadoop.user.group.static.mapping.overrides",
        System.getProperty("user.name") + "=supergroup;" + a.getOrDefault("hdfs-user", "sparkml") + "=supergroup"
        // HiveServer2's own principal (its scratch dirs); queries run as the analyst, see hadoop.proxyuser.hive.
        + (kerberos ? ";hive=supergroup" : ""));
    // HiveServer2 with Kerberos impersonates each client (hive.server2.enable.doAs): HDFS checks the analyst's rights.
    hdfsConf.set("hadoop.proxyuser.hive.hosts", "127.0.0.1,localhost");
    hdfsConf.set("hadoop.proxyuser.hive.groups", "*");
    hdfsConf.set("hadoop.proxyuser." + System.getProperty("user.name") + ".hosts", "*");
    hdfsConf.set("hadoop.proxyuser." + System.getProperty("user.name") + ".groups", "*");
    // Group lookups are a JVM-wide singleton: load it from this configuration before any daemon asks.
    Groups.getUserToGroupsMappingServiceWithLoadedConfiguration(hdfsConf);
    UserGroupInformation hdfsUgi = login(hdfsConf, a, "hdfs");
    MiniDFSCluster dfs = as(hdfsUgi, () -> startHdfs(hdfsConf, a, format));
    String defaultFs = "hdfs://" + host + ":" + a.get("nn-port");
    log("hdfs up at " + defaultFs + " (formatted: " + format + ", security: " + a.getOrDefault("security", "simple") + ")");

    YarnConfiguration yarnConf = new YarnConfiguration(hdfsConf);
    yarnConf.set("fs.defaultFS", defaultFs);
    UserGroupInformation yarnUgi = login(yarnConf, a, "yarn");
    MiniYARNCluster yarn = as(yarnUgi, () -> startYarn(yarnConf, a, host));
    Configuration live = yarn.getConfig();
    log("yarn up at " + live.get(YarnConfiguration.RM_ADDRESS));

    writeClientConf(confDir, a, host, defaultFs, live, kerberos);

    String archive = a.get("spark-archive");
    if (archive != null && !archive.isEmpty()) {
      as(hdfsUgi, () -> {
        uploadOnce(dfs.getFileSystem(), new File(archive), new Path(a.get("spark-archive-dest")));
        return null;
      });
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

  private static MiniDFSCluster startHdfs(Configuration hdfsConf, Map<String, String> a, boolean format) throws Exception {
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
    return dfs;
  }

  private static MiniYARNCluster startYarn(YarnConfiguration yarnConf, Map<String, String> a, String host) throws Exception {
    yarnConf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_FIXED_PORTS, true);
    yarnConf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_CONTROL_RESOURCE_MONITORING, false);
    yarnConf.set(YarnConfiguration.RM_HOSTNAME, host);
    yarnConf.set(YarnConfiguration.RM_ADDRESS, host + ":" + a.get("rm-port"));
    yarnConf.set(YarnConfiguration.RM_SCHEDULER_ADDRESS, host + ":" + a.get("rm-scheduler-port"));
    yarnConf.set(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, host + ":" + a.get("rm-tracker-port"));
    yarnConf.set(YarnConfiguration.RM_ADMIN_ADDRESS, host + ":" + a.get("rm-admin-port"));
    yarnConf.set(YarnConfiguration.RM_WEBAPP_ADDRESS, host + ":" + a.get("rm-web-port"));
    yarnConf.set("yarn.nodemanager.hostname", host);
    // The RM and NM web UIs and REST APIs stay open (read-only views on loopback; the tests poll them):
    // only WebHDFS, which reads and writes data, requires SPNEGO.
    yarnConf.set("hadoop.http.authentication.type", "simple");
    yarnConf.setBoolean("hadoop.http.authentication.simple.anonymous.allowed", true);
    // The RM's node attribute store would default to /tmp/hadoop-yarn-<user>, a directory other clusters on
    // this machine share (and the RM retries for minutes when it cannot make it): keep it in the state dir.
    yarnConf.set("yarn.node-attribute.fs-store.root-dir", new File(a.get("state"), "yarn-node-attribute").toURI().toString());
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
    return yarn;
  }

  /** Kerberos for every daemon: keytabs, principals, SPNEGO on WebHDFS, block tokens; no privileged ports. */
  private static void secure(Configuration conf, Map<String, String> a) {
    String keytabs = a.get("keytab-dir");
    String realm = a.get("realm");
    String hdfs = "hdfs/localhost@" + realm;
    String yarn = "yarn/localhost@" + realm;
    conf.set("hadoop.security.authentication", "kerberos");
    conf.set("dfs.namenode.kerberos.principal", hdfs);
    conf.set("dfs.namenode.keytab.file", keytabs + "/hdfs.keytab");
    conf.set("dfs.datanode.kerberos.principal", hdfs);
    conf.set("dfs.datanode.keytab.file", keytabs + "/hdfs.keytab");
    // '*': every HTTP/ principal of the keytab, so SPNEGO works for http://127.0.0.1 and http://localhost.
    conf.set("dfs.web.authentication.kerberos.principal", "*");
    conf.set("dfs.web.authentication.kerberos.keytab", keytabs + "/hdfs.keytab");
    // WebHDFS's filter takes its type from the common HTTP keys (Hadoop 3.3+); YARN resets it (startYarn).
    conf.set("hadoop.http.authentication.type", "kerberos");
    conf.set("hadoop.http.authentication.kerberos.principal", "*");
    conf.set("hadoop.http.authentication.kerberos.keytab", keytabs + "/hdfs.keytab");
    conf.setBoolean("hadoop.http.authentication.simple.anonymous.allowed", false);
    conf.setBoolean("dfs.block.access.token.enable", true);
    // A secure DataNode normally needs ports < 1024 (jsvc) or SASL plus HTTPS on its data transfer;
    // this Hadoop test switch lets it run on the cluster's own ports as an ordinary process.
    conf.setBoolean("ignore.secure.ports.for.testing", true);
    conf.set(YarnConfiguration.RM_PRINCIPAL, yarn);
    conf.set(YarnConfiguration.RM_KEYTAB, keytabs + "/yarn.keytab");
    conf.set(YarnConfiguration.NM_PRINCIPAL, yarn);
    conf.set(YarnConfiguration.NM_KEYTAB, keytabs + "/yarn.keytab");
    UserGroupInformation.setConfiguration(conf);
  }

  /**
   * The daemon's own login (its keytab), or the OS user without Kerberos. It also becomes the JVM's login
   * user: YARN, started last, needs that (its token renewer acts as the login user, and HDFS accepts a
   * renewal only from the renewer named in the token, 'yarn'); HDFS keeps its identity through doAs.
   */
  private static UserGroupInformation login(Configuration conf, Map<String, String> a, String role) throws IOException {
    if (!UserGroupInformation.isSecurityEnabled()) return UserGroupInformation.getCurrentUser();
    String principal = role + "/localhost@" + a.get("realm");
    UserGroupInformation.loginUserFromKeytab(principal, a.get("keytab-dir") + "/" + role + ".keytab");
    return UserGroupInformation.getLoginUser();
  }

  /**
   * Runs a daemon's start-up as its own principal. HDFS and YARN share this JVM, and Hadoop's RPC servers
   * take their identity from the current user of the threads they start; doAs gives each its own, where
   * the JVM-wide login user (whoever logged in last) would give both the same.
   */
  private static <T> T as(UserGroupInformation ugi, PrivilegedExceptionAction<T> action) throws Exception {
    return ugi.doAs(action);
  }

  private static void writeClientConf(File confDir, Map<String, String> a, String host, String defaultFs,
      Configuration live, boolean kerberos) throws IOException {
    confDir.mkdirs();
    Configuration core = new Configuration(false);
    core.set("fs.defaultFS", defaultFs);
    core.set("hadoop.proxyuser." + System.getProperty("user.name") + ".hosts", "*");
    core.set("hadoop.proxyuser." + System.getProperty("user.name") + ".groups", "*");
    Configuration hdfsSite = new Configuration(false);
    hdfsSite.set("dfs.replication", "1");
    hdfsSite.set("dfs.namenode.rpc-address", host + ":" + a.get("nn-port"));
    hdfsSite.set("dfs.namenode.http-address", host + ":" + a.get("nn-http-port"));
    hdfsSite.set("dfs.webhdfs.enabled", "true");
    Configuration yarnSite = new Configuration(false);
    for (String key : new String[] {
        YarnConfiguration.RM_HOSTNAME, YarnConfiguration.RM_ADDRESS, YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS, YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB,
        YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB}) {
      yarnSite.set(key, live.get(key));
    }
    if (kerberos) {
      // What clients must know: Kerberos is on, and which principals the NameNode and RM run as.
      core.set("hadoop.security.authentication", "kerberos");
      hdfsSite.set("dfs.namenode.kerberos.principal", live.get("dfs.namenode.kerberos.principal"));
      hdfsSite.set("dfs.datanode.kerberos.principal", live.get("dfs.datanode.kerberos.principal"));
      hdfsSite.set("dfs.block.access.token.enable", "true");
      yarnSite.set(YarnConfiguration.RM_PRINCIPAL, live.get(YarnConfiguration.RM_PRINCIPAL));
      yarnSite.set(YarnConfiguration.NM_PRINCIPAL, live.get(YarnConfiguration.NM_PRINCIPAL));
    }
    write(core, new File(confDir, "core-site.xml"));
    write(hdfsSite, new File(confDir, "hdfs-site.xml"));
    write(yarnSite, new File(confDir, "yarn-site.xml"));
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
