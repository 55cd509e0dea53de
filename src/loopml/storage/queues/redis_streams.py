"""The real queue: Redis Streams with consumer groups, one stream per topic partition.

Redis keeps delivered-but-unacked entries in each group's pending list (PEL), which is
exactly the at-least-once contract of :class:`~loopml.storage.queues.base.Queue`:
``XREADGROUP >`` delivers, ``XACK`` acknowledges, ``XREADGROUP 0`` recovers a consumer's
own pending entries after a restart and ``XAUTOCLAIM`` takes over a dead consumer's.
All keys live under a namespace so several projects (or tests) share one server.

Batch reads and acks run as small server-side Lua scripts: ``XREADGROUP`` answers seven
RESP elements per entry, which redis-py parses in pure Python slower than the learner
learns; the script returns a partition's entries as four strings (ids, keys, payloads
joined into one JSON array) and an ack sends its ids as one string. The server does a
little more (the benchmark reports its CPU), the client much less.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from loopml.core.errors import UnavailableError
from loopml.storage.queues.base import (
    Message,
    MessageBatch,
    Position,
    Queue,
    ReadAhead,
    check_count,
    check_keys,
    check_partitions,
    check_payload,
    check_topic,
    partition_for,
)
from loopml.storage.queues.codec import decode, encode

_PAGE = 1000

#: ``XACK key group id...`` for each key, its ids given as one space-separated string.
_ACK = """
local acked = 0
for i, stream in ipairs(KEYS) do
  local ids = {}
  for id in string.gmatch(ARGV[i + 1], '%S+') do
    ids[#ids + 1] = id
    if #ids == 1000 then
      acked = acked + redis.call('XACK', stream, ARGV[1], unpack(ids))
      ids = {}
    end
  end
  if #ids > 0 then
    acked = acked + redis.call('XACK', stream, ARGV[1], unpack(ids))
  end
end
return acked
"""

#: ``XREADGROUP GROUP g c COUNT n STREAMS key >`` per key; each partition's entries come
#: back as {key index, "id id ...", "[key or null, ...]", "[payload, ...]"}: the stored
#: payloads are JSON already, so joining them is all the server does per entry.
_READ_NEW = """
local out = {}
for i, stream in ipairs(KEYS) do
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                       'STREAMS', stream, '>')
  if r and #r[1][2] > 0 then
    local ids, keys, vals = {}, {}, {}
    for j, e in ipairs(r[1][2]) do
      ids[j] = e[1]
      local f = e[2]
      keys[j] = cjson.null
      for m = 1, #f, 2 do
        if f[m] == 'v' then
          vals[j] = f[m + 1]
        elseif f[m] == 'k' then
          keys[j] = f[m + 1]
        end
      end
    end
    out[#out + 1] = {i, table.concat(ids, ' '), cjson.encode(keys),
                     '[' .. table.concat(vals, ',') .. ']'}
  end
end
return out
"""


def _position(entry_id: str) -> Position:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamsQueue(Queue):
    """A queue on Redis Streams; ``namespace`` prefixes every key it touches."""

    def __init__(self, url: str, namespace: str = "loopml") -> None:
        super().__init__()
        import redis

        self.url = url
        self.namespace = namespace
        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
        try:
            self._redis.ping()
        except redis.exceptions.ConnectionError as exc:
            raise UnavailableError(
                f"cannot reach Redis at {url.split('@')[-1]} ({exc}); start Redis or point "
                "storage.queue at sqlite:///.loopml/queue.db"
            ) from exc
        self._groups: set[tuple[str, str]] = set()
        self._parts: dict[str, int] = {}
        self._read_script: Any = None
        self._read_loaded = False
        self._ack_script: Any = None

    # -- keys ----------------------------------------------------------------------------
    @property
    def _topics_key(self) -> str:
        return f"{self.namespace}:q:topics"

    def _stream(self, topic: str, part: int) -> str:
        return f"{self.namespace}:q:{topic}:{part}"

    # -- topics --------------------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int = 1) -> int:
        self._check_open()
        check_topic(topic)
        check_partitions(partitions)
        self._redis.hsetnx(self._topics_key, topic, partitions)
        count = int(self._redis.hget(self._topics_key, topic))
        self._parts[topic] = count
        return count

    def partitions(self, topic: str) -> int:
        self._check_open()
        if topic not in self._parts:
            raw = self._redis.hget(self._topics_key, topic)
            if raw is None:
                return 1
            self._parts[topic] = int(raw)
        return self._parts[topic]

    def topics(self) -> list[str]:
        self._check_open()
        return sorted(k.decode() for k in self._redis.hkeys(self._topics_key))

    def length(self, topic: str) -> int:
        self._check_open()
        return sum(self._redis.xlen(self._stream(topic, p)) for p in range(self.partitions(topic)))

    def delete_topic(self, topic: str) -> None:
        self._check_open()
        keys = [self._stream(topic, p) for p in range(self.partitions(topic))]
        self._redis.delete(*keys)
        self._redis.hdel(self._topics_key, topic)
        self._parts.pop(topic, None)
        self._groups = {g for g in self._groups if not g[0].startswith(f"{topic}:")}

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self,
        topic: str,
        payloads: Sequence[dict[str, Any]],
        keys: Sequence[str | None] | None = None,
    ) -> list[str]:
        self._check_open()
        check_topic(topic)
        keys = check_keys(payloads, keys)
        parts = self.partitions(topic) if topic in self._parts else self.create_topic(topic)
        pipe = self._redis.pipeline(transaction=True)
        for payload, key in zip(payloads, keys, strict=True):
            fields = {b"v": encode(check_payload(payload))}
            if key is not None:
                fields[b"k"] = key.encode()
            pipe.xadd(self._stream(topic, partition_for(key, parts)), fields)
        return [i.decode() for i in pipe.execute()]

    # -- consuming -----------------------------------------------------------------------
    def _ensure_group(self, topic: str, group: str, part: int) -> str:
        import redis

        stream = self._stream(topic, part)
        if (stream, group) not in self._groups:
            try:
                self._redis.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._groups.add((stream, group))
        return stream

    def _messages(self, topic: str, part: int, entries: list, deliveries: int = 1) -> list[Message]:
        out = []
        for raw_id, fields in entries:
            if not fields:  # an entry deleted while pending: nothing left to deliver
                continue
            entry_id = raw_id.decode()
            key = fields.get(b"k")
            out.append(
                Message(
                    topic,
                    part,
                    entry_id,
                    _position(entry_id),
                    key.decode() if key is not None else None,
                    decode(fields[b"v"]),
                    deliveries,
                )
            )
        return out

    def consume_batch(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int = 0,
        partitions: Iterable[int] | None = None,
    ) -> MessageBatch:
        self._check_open()
        check_count(count)
        parts = self._select(topic, partitions)
        try:
            out = self._read_new(topic, group, consumer, count, parts)
        except Exception as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the stream was deleted behind our back (FLUSHDB, DEL): recreate and go on
            self._groups = {g for g in self._groups if g[1] != group}
            out = self._read_new(topic, group, consumer, count, parts)
        if out or block_ms <= 0:
            return out
        # nothing yet: wait for new entries with a blocking XREADGROUP (a script cannot block)
        streams = {self._ensure_group(topic, group, p): ">" for p in parts}
        index = {self._stream(topic, p): p for p in parts}
        reply = self._redis.xreadgroup(group, consumer, streams, count=count, block=block_ms)
        msgs: list[Message] = []
        for stream, entries in reply or []:
            msgs.extend(self._messages(topic, index[stream.decode()], entries))
        return MessageBatch.from_messages(msgs, topic)

    def _read_new(
        self, topic: str, group: str, consumer: str, count: int, parts: list[int]
    ) -> MessageBatch:
        """``XREADGROUP >`` on each partition inside one server-side script.

        The script returns each partition's entries as four strings (ids, positions,
        keys, and the stored payloads joined into one JSON array), so the client parses
        a handful of replies per batch instead of seven RESP elements per message; the
        entries are delivered and pending exactly as with a plain ``XREADGROUP``.
        """
        streams = [self._ensure_group(topic, group, p) for p in parts]
        if self._read_script is None:
            self._read_script = self._redis.register_script(_READ_NEW)
        reply = self._read_script(keys=streams, args=[group, consumer, count])
        return _batch(topic, parts, reply)

    def read_ahead(self, topic: str, group: str, consumer: str, count: int = 100) -> ReadAhead:
        """Send the next batch's read now, on a connection of its own; the reply is read
        (and decoded) when :meth:`ReadAhead.result` is called.

        The Redis server prepares the batch while the caller works on the previous one --
        no thread: the command is simply not waited for. Entries are delivered (pending)
        from the moment the server runs it, exactly as with :meth:`consume_batch`.
        """
        self._check_open()
        check_count(count)
        parts = self._select(topic, None)
        streams = [self._ensure_group(topic, group, p) for p in parts]
        if self._read_script is None:
            self._read_script = self._redis.register_script(_READ_NEW)
        script = self._read_script
        if not self._read_loaded:
            self._redis.script_load(_READ_NEW)
            self._read_loaded = True
        from redis.exceptions import NoScriptError

        pool = self._redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("EVALSHA", script.sha, len(streams), *streams, group, consumer, count)
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise

        def finish() -> MessageBatch:
            try:
                reply = conn.read_response()
            except NoScriptError:  # the server lost its scripts: read again
                pool.release(conn)
                self._read_loaded = False
                return self._read_new(topic, group, consumer, count, parts)
            except BaseException:
                conn.disconnect()
                pool.release(conn)
                raise
            pool.release(conn)
            return _batch(topic, parts, reply)

        def cancel() -> None:
            conn.disconnect()  # its reply is never read: the connection must not be reused
            pool.release(conn)

        return ReadAhead(finish, cancel)

    def _delivery_counts(self, stream: str, group: str, consumer: str | None) -> dict[str, int]:
        rows = self._redis.xpending_range(
            stream, group, min="-", max="+", count=1_000_000, consumername=consumer
        )
        return {r["message_id"].decode(): int(r["times_delivered"]) for r in rows}

    def recover(
        self, topic: str, group: str, consumer: str, partitions: Iterable[int] | None = None
    ) -> list[Message]:
        self._check_open()
        out: list[Message] = []
        for part in self._select(topic, partitions):
            stream = self._ensure_group(topic, group, part)
            last = "0"
            found: list[Message] = []
            while True:
                reply = self._redis.xreadgroup(group, consumer, {stream: last}, count=_PAGE)
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                found.extend(self._messages(topic, part, entries))
                last = entries[-1][0].decode()
            if found:
                counts = self._delivery_counts(stream, group, consumer)
                found = [_with_deliveries(m, counts.get(m.id, 2)) for m in found]
            out.extend(found)
        return out

    def claim_stale(self, topic: str, group: str, consumer: str, min_idle_ms: int) -> list[Message]:
        self._check_open()
        out: list[Message] = []
        for part in self._select(topic, None):
            stream = self._ensure_group(topic, group, part)
            start = "0-0"
            found: list[Message] = []
            while True:
                next_start, entries, *_ = self._redis.xautoclaim(
                    stream, group, consumer, min_idle_ms, start_id=start, count=_PAGE
                )
                found.extend(self._messages(topic, part, entries))
                start = next_start.decode() if isinstance(next_start, bytes) else next_start
                if start == "0-0":
                    break
            if found:
                counts = self._delivery_counts(stream, group, consumer)
                found = [_with_deliveries(m, counts.get(m.id, 2)) for m in found]
            out.extend(found)
        return out

    def ack(self, topic: str, group: str, messages: Iterable[Message] | MessageBatch) -> int:
        self._check_open()
        by_part: dict[int, list[str]] = {}
        if isinstance(messages, MessageBatch):
            parts = set(messages.partitions)
            if len(parts) == 1:
                by_part[parts.pop()] = messages.ids
            else:
                for part, entry_id in zip(messages.partitions, messages.ids, strict=True):
                    by_part.setdefault(part, []).append(entry_id)
        else:
            for m in messages:
                by_part.setdefault(m.partition, []).append(m.id)
        if not by_part:
            return 0
        if self._ack_script is None:
            self._ack_script = self._redis.register_script(_ACK)
        # ids travel as one string per partition: packing ten thousand arguments costs
        # the client more than XACK costs the server
        streams = [self._stream(topic, part) for part in by_part]
        return int(
            self._ack_script(
                keys=streams, args=[group, *(" ".join(ids) for ids in by_part.values())]
            )
        )

    def pending(self, topic: str, group: str) -> int:
        self._check_open()
        total = 0
        for part in range(self.partitions(topic)):
            stream = self._ensure_group(topic, group, part)
            total += int(self._redis.xpending(stream, group)["pending"])
        return total

    def lag(self, topic: str, group: str) -> int:
        self._check_open()
        total = 0
        for part in range(self.partitions(topic)):
            stream = self._ensure_group(topic, group, part)
            for info in self._redis.xinfo_groups(stream):
                name = info["name"]
                if (name.decode() if isinstance(name, bytes) else name) == group:
                    lag = info.get("lag")
                    total += int(lag) if lag is not None else self._redis.xlen(stream)
        return total

    def purge(self) -> None:
        """Delete every key of this namespace (tests and `loopml stream reset`)."""
        self._check_open()
        for key in self._redis.scan_iter(match=f"{self.namespace}:q:*", count=1000):
            self._redis.delete(key)
        self._groups.clear()
        self._parts.clear()

    def close(self) -> None:
        if not self._closed:
            self._redis.close()
        super().close()


def _with_deliveries(message: Message, deliveries: int) -> Message:
    from dataclasses import replace

    return replace(message, deliveries=deliveries)


def _batch(topic: str, parts: list[int], reply: list[Any]) -> MessageBatch:
    """The read script's reply (four strings per partition) as one :class:`MessageBatch`."""
    out = MessageBatch.empty(topic)
    for index, ids, keys, payloads in reply:
        id_list = ids.decode().split(" ")
        # "ms-seq ms-seq" -> [ms, seq, ms, seq] in one parse -> [(ms, seq), ...]
        flat = decode(b"[" + ids.replace(b"-", b",").replace(b" ", b",") + b"]")
        out.extend(
            MessageBatch(
                topic,
                [parts[int(index) - 1]] * len(id_list),
                id_list,
                list(zip(flat[::2], flat[1::2], strict=True)),
                decode(keys),
                decode(payloads),
            )
        )
    return out
