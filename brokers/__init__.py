"""Development brokers on loopback: Tansu (embedded) and Apache Kafka (KRaft)."""
