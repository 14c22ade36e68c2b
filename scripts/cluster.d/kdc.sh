# The test cluster's Kerberos KDC (MIT krb5 from Debian), sourced by scripts/cluster (see docs/cluster.md).
# Realm SPARKML.TEST, one KDC on port $KDC_PORT of every interface (TCP and UDP), its database, krb5.conf and every
# keytab under $KRB (git-ignored). Principals are created once, with the database; keytabs never change
# afterwards (a second ktadd would bump the key version and invalidate keytabs already handed out).
# Uses from scripts/cluster: say, die, alive, pid_of, wait_for, port_open, HOST, STATE, LOGS, RUN.

REALM=SPARKML.TEST
KRB="$STATE/kerberos"
KRB5_CONF="$KRB/krb5.conf"
KEYTABS="$KRB/keytabs"
# Service principals: Hadoop daemons by role, SPNEGO (HTTP) under both names a client may use for the
# NameNode (WebHDFS URLs say 127.0.0.1, redirects to the DataNode say localhost), HiveServer2.
HDFS_PRINCIPAL="hdfs/localhost@$REALM"
YARN_PRINCIPAL="yarn/localhost@$REALM"
HIVE_PRINCIPAL="hive/$HOST@$REALM"
# Users: the jobs' service account (owner of the registry), an analyst without rights on the registry,
# and a copy of the service account whose tickets live SHORT_LIFE (renewal and expiry tests).
JOB_USER=svc-sparkml
OTHER_USER=analyst
SHORT_USER=svc-short
SHORT_LIFE="2 minutes"
KDC_BINS=(/usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local /usr/bin/kinit /usr/bin/klist)

check_kdc_prereqs() {
  local bin
  for bin in "${KDC_BINS[@]}"; do
    [[ -x "$bin" ]] || die "$bin is missing (MIT Kerberos): run scripts/setup --dev (installs krb5-kdc, krb5-admin-server, krb5-user)." 2
  done
}

kadmin_q() { KRB5_CONFIG="$KRB5_CONF" KRB5_KDC_PROFILE="$KRB/kdc.conf" /usr/sbin/kadmin.local -r "$REALM" -q "$1" >>"$LOGS/kdc-admin.log" 2>&1; }

write_krb5_conf() {
  mkdir -p "$KRB" "$KEYTABS"
  chmod 700 "$KRB" "$KEYTABS"
  # Client side, for every JVM (-Djava.security.krb5.conf) and MIT library (KRB5_CONFIG) of this cluster.
  # TCP only (udp_preference_limit 1): Java and MIT agree, and big tickets never fragment.
  # No DNS: names are used as written, so HTTP@127.0.0.1 means the principal HTTP/127.0.0.1.
  cat >"$KRB5_CONF.tmp" <<EOF
[libdefaults]
  default_realm = $REALM
  dns_lookup_realm = false
  dns_lookup_kdc = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
  ticket_lifetime = 10h
  renew_lifetime = 7d
  forwardable = true
  permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
  default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
  default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96

[realms]
  $REALM = {
    kdc = $HOST:$KDC_PORT
    admin_server = $HOST:$KDC_PORT
  }

[domain_realm]
  localhost = $REALM
  $HOST = $REALM
EOF
  mv "$KRB5_CONF.tmp" "$KRB5_CONF"
  # The KDC listens on all interfaces (a port without an address), like the NameNode RPC port: the
  # sshd-hosts edge nodes log in through their bridge (10.77.0.1), which does not exist yet when the
  # cluster starts. Clients on this host still name $HOST in krb5.conf.
  cat >"$KRB/kdc.conf.tmp" <<EOF
[kdcdefaults]
  kdc_listen = $KDC_PORT
  kdc_tcp_listen = $KDC_PORT

[realms]
  $REALM = {
    database_name = $KRB/principal
    key_stash_file = $KRB/stash
    acl_file = $KRB/kadm5.acl
    kdc_listen = $KDC_PORT
    kdc_tcp_listen = $KDC_PORT
    max_life = 10h
    max_renewable_life = 7d
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    default_principal_flags = +preauth
  }

[logging]
  kdc = FILE:$LOGS/kdc.log
  admin_server = FILE:$LOGS/kdc-admin.log
EOF
  mv "$KRB/kdc.conf.tmp" "$KRB/kdc.conf"
  : >"$KRB/kadm5.acl"
}

init_kdc() {
  write_krb5_conf
  [[ -f "$KRB/.complete" ]] && return 0
  say "creating the Kerberos realm $REALM and its keytabs in $KRB"
  rm -f "$KRB"/principal* "$KRB/stash" "$KEYTABS"/*.keytab
  # The master key password protects nothing here (the stash file sits next to the database); random anyway.
  KRB5_CONFIG="$KRB5_CONF" KRB5_KDC_PROFILE="$KRB/kdc.conf" /usr/sbin/kdb5_util create -r "$REALM" -s \
    -P "$(head -c 24 /dev/urandom | base64)" >>"$LOGS/kdc-admin.log" 2>&1 \
    || die "kdb5_util could not create the realm database; see $LOGS/kdc-admin.log" 1
  local p
  for p in "$HDFS_PRINCIPAL" "$YARN_PRINCIPAL" "HTTP/localhost@$REALM" "HTTP/$HOST@$REALM" "$HIVE_PRINCIPAL" \
           "$JOB_USER@$REALM" "$OTHER_USER@$REALM"; do
    kadmin_q "addprinc -randkey $p" || die "cannot create principal $p; see $LOGS/kdc-admin.log" 1
  done
  kadmin_q "addprinc -randkey -maxlife \"$SHORT_LIFE\" -maxrenewlife \"$SHORT_LIFE\" $SHORT_USER@$REALM" \
    || die "cannot create principal $SHORT_USER; see $LOGS/kdc-admin.log" 1
  # -norandkey keeps the keys the database holds, so a keytab can be written again without invalidating others.
  kadmin_q "ktadd -norandkey -k $KEYTABS/hdfs.keytab $HDFS_PRINCIPAL HTTP/localhost@$REALM HTTP/$HOST@$REALM"
  kadmin_q "ktadd -norandkey -k $KEYTABS/yarn.keytab $YARN_PRINCIPAL HTTP/localhost@$REALM HTTP/$HOST@$REALM"
  kadmin_q "ktadd -norandkey -k $KEYTABS/hive.keytab $HIVE_PRINCIPAL"
  for p in "$JOB_USER" "$OTHER_USER" "$SHORT_USER"; do
    kadmin_q "ktadd -norandkey -k $KEYTABS/$p.keytab $p@$REALM"
  done
  for p in hdfs yarn hive "$JOB_USER" "$OTHER_USER" "$SHORT_USER"; do
    [[ -s "$KEYTABS/$p.keytab" ]] || die "keytab $KEYTABS/$p.keytab was not written; see $LOGS/kdc-admin.log" 1
  done
  chmod 600 "$KEYTABS"/*.keytab
  touch "$KRB/.complete"
}

start_kdc() {
  local pid; pid="$(pid_of kdc)"
  alive "$pid" && return 0
  init_kdc
  say "starting the Kerberos KDC for $REALM on port $KDC_PORT of all interfaces (log: $LOGS/kdc.log)"
  : >"$LOGS/kdc.log"
  # -n: stay in the foreground, so the pid file names the daemon itself and stop can end it.
  (cd "$KRB" && exec 9>&- && KRB5_CONFIG="$KRB5_CONF" KRB5_KDC_PROFILE="$KRB/kdc.conf" \
    exec setsid /usr/sbin/krb5kdc -n -r "$REALM" >>"$LOGS/kdc.log" 2>&1 </dev/null) &
  echo $! >"$RUN/kdc.pid"
  wait_for 30 "$!" "$LOGS/kdc.log" "the Kerberos KDC" kdc_ready
}

# Ready when a keytab login of the job user succeeds (into a throw-away cache).
kdc_ready() {
  local cache; cache="$(mktemp)"
  KRB5_CONFIG="$KRB5_CONF" /usr/bin/kinit -k -t "$KEYTABS/$JOB_USER.keytab" -c "FILE:$cache" "$JOB_USER@$REALM" 2>/dev/null
  local rc=$?
  rm -f "$cache"
  return $rc
}
