"""The only layer that touches Spark, HDFS, Hive, SSH and files."""
