"""Produce an NDJSON corpus to a Kafka topic, one record per message, keyed by eventID.

    python produce.py BOOTSTRAP TOPIC corpus.ndjson

Prints one JSON object: messages, bytes, seconds. Uses confluent-kafka (librdkafka),
acks=all, idempotent, like trailhound's own producer.
"""
import json
import re
import sys
import time

from confluent_kafka import Producer

EVENT_ID = re.compile(rb'"eventID"\s*:\s*"([^"]*)"')


def main() -> None:
    bootstrap, topic, path = sys.argv[1:4]
    p = Producer({
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.size": 1 << 20,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200000,
    })
    n = 0
    size = 0
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line:
                continue
            m = EVENT_ID.search(line)
            key = m.group(1) if m else None
            while True:
                try:
                    p.produce(topic, value=line, key=key)
                    break
                except BufferError:
                    p.poll(0.05)
            n += 1
            size += len(line)
            if n % 10000 == 0:
                p.poll(0)
    left = p.flush(300)
    if left:
        sys.exit(f"{left} messages undelivered")
    print(json.dumps({"messages": n, "bytes": size, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
