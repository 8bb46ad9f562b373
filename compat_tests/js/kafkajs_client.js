// kafkajs against a kbroker, driven by compat_tests/test_kafkajs.py:
//   node kafkajs_client.js '{"step": "produce" | "consume" | "admin", "brokers": ["127.0.0.1:PORT"], ...}'
// Prints one JSON line with what happened; exits non-zero on any client error.
"use strict";
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

const args = JSON.parse(process.argv[2]);
const kafka = new Kafka({ clientId: "kbroker-compat", brokers: args.brokers, logLevel: logLevel.ERROR,
                          retry: { retries: 5 } });

async function produce() {
  // Idempotent (acks=all, one request in flight), gzip, headers, in batches of 100 across partitions.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let sent = 0;
  for (let start = args.first; start < args.first + args.count; start += 100) {
    const messages = [];
    for (let i = start; i < Math.min(start + 100, args.first + args.count); i++) {
      messages.push({ key: `k${i}`, value: JSON.stringify({ n: i }), headers: { source: "kafkajs" } });
    }
    const answers = await producer.send({ topic: args.topic, compression: CompressionTypes.GZIP, messages });
    sent += messages.length;
    if (answers.some(a => a.errorCode !== 0)) throw new Error(`produce errors: ${JSON.stringify(answers)}`);
  }
  await producer.disconnect();
  return { sent };
}

async function consume() {
  // A consumer group member reading until `expect` messages arrived, committing as it goes.
  const consumer = kafka.consumer({ groupId: args.group, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${args.expect} messages`)),
                             args.timeout_ms);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        received.push({ partition, offset: Number(message.offset), key: message.key.toString(),
                        value: JSON.parse(message.value.toString()), source: message.headers.source.toString() });
        if (received.length >= args.expect) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();  // commits what was consumed, then leaves the group
  return { received };
}

async function admin() {
  const client = kafka.admin();
  await client.connect();
  const result = {};
  if (args.create) {
    result.created = await client.createTopics({ topics: [{ topic: args.topic, numPartitions: args.partitions }],
                                                 waitForLeaders: true });
  }
  result.topics = await client.listTopics();
  const metadata = await client.fetchTopicMetadata({ topics: [args.topic] });
  result.partitions = metadata.topics[0].partitions.map(p => ({ id: p.partitionId, leader: p.leader }));
  result.offsets = await client.fetchTopicOffsets(args.topic);
  if (args.group) {
    result.group_offsets = await client.fetchOffsets({ groupId: args.group, topics: [args.topic] });
    result.groups = (await client.describeGroups([args.group])).groups.map(g => ({ id: g.groupId, state: g.state,
                                                                                    protocolType: g.protocolType }));
  }
  if (args.delete) {
    await client.deleteTopics({ topics: [args.topic] });
    result.after_delete = await client.listTopics();
  }
  await client.disconnect();
  return result;
}

const steps = { produce, consume, admin };
steps[args.step]().then(result => {
  // Exit only once the pipe took everything: process.exit cuts off pending stdout writes (64 KiB).
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}).catch(error => {
  console.error(`kafkajs ${args.step} failed: ${error.stack || error}`);
  process.exit(1);
});
