"""Cluster mode: several brokers sharing topics through ZooKeeper (`zookeeper.connect`).

Kafka's ZooKeeper-era design, kept small:
    image.py       the cluster as every broker sees it: brokers, controller, topics, partition states
    placement.py   replica assignment for new topics and partitions (Kafka's AdminUtils)
    election.py    the controller's decisions as pure functions of an image (leaders, ISR)
    reassignment.py  partition reassignment (KIP-455): starting, completing, cancelling moves, pure
    metastore.py   the narrow interface to the metadata store (`MetaStore`)
    zk_store.py    its ZooKeeper implementation: the only module that imports kazoo
    controller.py  the controller: elected through /controller, writes partition states
    member.py      this broker in the cluster: registration, lease, leadership, local logs, coordinators

A single node never imports this package: without `zookeeper.connect` nothing here runs.
"""
