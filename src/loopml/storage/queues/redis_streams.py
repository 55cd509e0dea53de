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

Packed entries (``publish_many(..., pack=n)``) hold up to ``n`` events of one partition:
fields ``n`` (the count), ``v`` (a JSON array of payloads) and ``k`` (a JSON array of
keys). Redis's own work (``XADD``, ``XREADGROUP``, the pending list, ``XACK``) is then
paid per entry, not per event. Reads unpack them: an event's id is
``<entry id>:<index>/<count>`` and its position the entry's plus its index. Reads still
count events: when an entry holds more than a read asked for, the rest waits in this
client (delivered, so pending in Redis) and comes first in the consumer's next read. An
entry is ``XACK``-ed once all its events are acked; until then this client remembers
which are (a consumer that dies before gets the whole entry again from ``recover``, and
deduplicates by position or event id as it must anyway).
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any

from loopml.core.errors import IntegrityError, UnavailableError
from loopml.storage.queues.base import (
    Message,
    MessageBatch,
    Position,
    Queue,
    ReadAhead,
    check_count,
    check_keys,
    check_pack,
    check_partitions,
    check_payload,
    check_topic,
    partition_for,
)
from loopml.storage.queues.codec import decode, encode

_PAGE = 1000
#: How long a topic found not created is taken as one partition without asking again.
_ABSENT_S = 1.0

#: For each key, its ARGV string of space-separated tokens: ``id`` is XACK-ed (in
#: batches), ``id*w`` is XACK-ed and counts ``w`` events (a packed entry completed by this
#: ack), ``id?w`` counts ``w`` events if the entry is pending (a packed entry partly acked:
#: not XACK-ed yet).
_ACK = """
local acked = 0
for i, stream in ipairs(KEYS) do
  local ids = {}
  for tok in string.gmatch(ARGV[i + 1], '%S+') do
    local at = string.find(tok, '[*?]')
    if at then
      local id, w = string.sub(tok, 1, at - 1), tonumber(string.sub(tok, at + 1))
      if string.sub(tok, at, at) == '*' then
        acked = acked + w * redis.call('XACK', stream, ARGV[1], id)
      elseif #redis.call('XPENDING', stream, ARGV[1], id, id, 1) > 0 then
        acked = acked + w
      end
    else
      ids[#ids + 1] = tok
      if #ids == 1000 then
        acked = acked + redis.call('XACK', stream, ARGV[1], unpack(ids))
        ids = {}
      end
    end
  end
  if #ids > 0 then
    acked = acked + redis.call('XACK', stream, ARGV[1], unpack(ids))
  end
end
return acked
"""

#: ``XREADGROUP GROUP g c COUNT n STREAMS key >`` per key, until the key's wanted number
#: of *events* (ARGV[1 + 2i]) is reached; ARGV[2 + 2i] is the largest entry of the key's
#: last read (0: unknown), so a packed stream is read a few entries at a time and a read
#: overshoots by less than one entry. Each key's entries come back as {key index,
#: "id id ...", "[key or null, ...]", "[payload, ...]", sizes} with one key and payload
#: per event (a packed entry's arrays are spliced in) and sizes "" when no entry is
#: packed, else one number per entry (0 for a plain entry).
_READ_NEW = """
local out = {}
for i, stream in ipairs(KEYS) do
  local want = tonumber(ARGV[1 + 2 * i])
  local most = tonumber(ARGV[2 + 2 * i])
  local ids, keys, vals, sizes = {}, {}, {}, {}
  local got, j, packed = 0, 0, false
  while got < want do
    local c = want - got
    if most ~= 1 then
      c = 1
      if most > 1 then c = math.max(1, math.floor((want - got) / most)) end
    end
    local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', c,
                         'STREAMS', stream, '>')
    if not r then break end
    local entries = r[1][2]
    for _, e in ipairs(entries) do
      j = j + 1
      ids[j] = e[1]
      local f = e[2]
      local v, k, n = nil, nil, nil
      for m = 1, #f, 2 do
        local name = f[m]
        if name == 'v' then
          v = f[m + 1]
        elseif name == 'k' then
          k = f[m + 1]
        elseif name == 'n' then
          n = f[m + 1]
        end
      end
      if n then
        n = tonumber(n)
        packed = true
        vals[j] = string.sub(v, 2, -2)
        keys[j] = string.sub(k, 2, -2)
        sizes[j] = n
      else
        n = 1
        vals[j] = v
        if k then keys[j] = cjson.encode(k) else keys[j] = 'null' end
        sizes[j] = 0
      end
      got = got + n
      if n > most then most = n end
    end
    if #entries < c then break end
  end
  if j > 0 then
    local s = ''
    if packed then s = table.concat(sizes, ' ') end
    out[#out + 1] = {i, table.concat(ids, ' '), '[' .. table.concat(keys, ',') .. ']',
                     '[' .. table.concat(vals, ',') .. ']', s}
  end
end
return out
"""

#: Events in the group's pending entries of one stream (KEYS[1]; KEYS[2] the packed
#: counts hash); ARGV[2..] are "id w" of entries partly acked by the caller.
_PENDING = """
local total = redis.call('XPENDING', KEYS[1], ARGV[1])[1]
if total == 0 then return 0 end
local extra = tonumber(redis.call('HGET', KEYS[2], KEYS[1]) or '0')
if extra == 0 then return total end
total = 0
local start = '-'
while true do
  local rows = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+', 1000)
  for _, row in ipairs(rows) do
    local e = redis.call('XRANGE', KEYS[1], row[1], row[1])
    local n = 1
    if #e > 0 then
      local f = e[1][2]
      for m = 1, #f, 2 do
        if f[m] == 'n' then n = tonumber(f[m + 1]) end
      end
    end
    total = total + n
  end
  if #rows < 1000 then break end
  start = '(' .. rows[#rows][1]
end
for m = 2, #ARGV, 2 do
  local id = ARGV[m]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) > 0 then
    total = total - tonumber(ARGV[m + 1])
  end
end
return total
"""

#: Events after the group's last delivered entry of one packed stream (KEYS[1]).
_LAG = """
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, id = nil, nil
  for m = 1, #g, 2 do
    if g[m] == 'name' then name = g[m + 1] elseif g[m] == 'last-delivered-id' then id = g[m + 1] end
  end
  if name == ARGV[1] then last = id end
end
if not last then return 0 end
local total, start = 0, '(' .. last
while true do
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1000)
  for _, e in ipairs(entries) do
    local f, n = e[2], 1
    for m = 1, #f, 2 do
      if f[m] == 'n' then n = tonumber(f[m + 1]) end
    end
    total = total + n
  end
  if #entries < 1000 then break end
  start = '(' .. entries[#entries][1]
end
return total
"""


def _position(entry_id: str) -> Position:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _entry_of(message_id: str) -> str:
    """The stream entry id of a message id (``<entry>:<index>/<count>`` when packed)."""
    return message_id.partition(":")[0]


@lru_cache(maxsize=256)
def _suffixes(n: int) -> tuple[str, ...]:
    return tuple(f":{i}/{n}" for i in range(n))


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
        self._pending_script: Any = None
        self._lag_script: Any = None
        #: (stream, group, consumer) -> events read from Redis, not yet handed over
        self._carry: dict[tuple[str, str, str], MessageBatch] = {}
        #: (stream, group, entry id) -> indices acked of a packed entry not yet XACK-ed
        self._partial: dict[tuple[str, str, str], set[int]] = {}
        #: stream -> events in the largest entry of its last read (how many to ask for)
        self._most: dict[str, int] = {}
        #: topic -> until when it is taken as not created (one partition)
        self._absent: dict[str, float] = {}

    # -- keys ----------------------------------------------------------------------------
    @property
    def _topics_key(self) -> str:
        return f"{self.namespace}:q:topics"

    @property
    def _packed_key(self) -> str:
        """A hash: stream -> events stored in it beyond one per entry (packed entries)."""
        return f"{self.namespace}:q:packed"

    def _stream(self, topic: str, part: int) -> str:
        return f"{self.namespace}:q:{topic}:{part}"

    def _forget(self, streams: set[str]) -> None:
        """Drop this client's state about ``streams`` (deleted)."""
        self._carry = {k: v for k, v in self._carry.items() if k[0] not in streams}
        self._partial = {k: v for k, v in self._partial.items() if k[0] not in streams}
        for stream in streams:
            self._most.pop(stream, None)

    # -- topics --------------------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int = 1) -> int:
        self._check_open()
        check_topic(topic)
        check_partitions(partitions)
        self._absent.pop(topic, None)
        self._redis.hsetnx(self._topics_key, topic, partitions)
        count = int(self._redis.hget(self._topics_key, topic))
        self._parts[topic] = count
        return count

    def partitions(self, topic: str) -> int:
        self._check_open()
        if topic not in self._parts:
            now = time.monotonic()
            if self._absent.get(topic, -math.inf) > now:  # asked a moment ago: still 1
                return 1
            raw = self._redis.hget(self._topics_key, topic)
            if raw is None:
                # a learner polls its requests topic every batch, and it may never be
                # created: a round trip per poll for that answer costs more than the poll
                self._absent[topic] = now + _ABSENT_S
                return 1
            self._absent.pop(topic, None)
            self._parts[topic] = int(raw)
        return self._parts[topic]

    def topics(self) -> list[str]:
        self._check_open()
        return sorted(k.decode() for k in self._redis.hkeys(self._topics_key))

    def length(self, topic: str) -> int:
        self._check_open()
        streams = [self._stream(topic, p) for p in range(self.partitions(topic))]
        entries = sum(self._redis.xlen(s) for s in streams)
        extra = self._redis.hmget(self._packed_key, streams)
        return entries + sum(int(x) for x in extra if x is not None)

    def delete_topic(self, topic: str) -> None:
        self._check_open()
        keys = [self._stream(topic, p) for p in range(self.partitions(topic))]
        self._redis.delete(*keys)
        self._redis.hdel(self._packed_key, *keys)
        self._redis.hdel(self._topics_key, topic)
        self._parts.pop(topic, None)
        self._groups = {g for g in self._groups if g[0] not in keys}
        self._forget(set(keys))

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self,
        topic: str,
        payloads: Sequence[dict[str, Any]],
        keys: Sequence[str | None] | None = None,
        pack: int = 1,
    ) -> list[str]:
        """Append messages in one transaction; with ``pack`` > 1, up to ``pack``
        consecutive messages of a partition go into one entry (see the module docstring).
        """
        self._check_open()
        check_topic(topic)
        check_pack(pack)
        keys = check_keys(payloads, keys)
        parts = self.partitions(topic) if topic in self._parts else self.create_topic(topic)
        pipe = self._redis.pipeline(transaction=True)
        if pack == 1:
            for payload, key in zip(payloads, keys, strict=True):
                fields = {b"v": encode(check_payload(payload))}
                if key is not None:
                    fields[b"k"] = key.encode()
                pipe.xadd(self._stream(topic, partition_for(key, parts)), fields)
            return [i.decode() for i in pipe.execute()]
        data = [encode(check_payload(p)) for p in payloads]
        by_part: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_part.setdefault(partition_for(key, parts), []).append(i)
        groups: list[list[int]] = []  # the messages of each entry, in the order sent
        extra: dict[str, int] = {}
        for part, members in by_part.items():
            stream = self._stream(topic, part)
            for start in range(0, len(members), pack):
                group = members[start : start + pack]
                if len(group) == 1:
                    (i,) = group
                    fields = {b"v": data[i]}
                    if keys[i] is not None:
                        fields[b"k"] = keys[i].encode()  # type: ignore[union-attr]
                else:
                    fields = {
                        b"n": str(len(group)).encode(),
                        b"v": b"[" + b",".join([data[i] for i in group]) + b"]",
                        b"k": encode([keys[i] for i in group]),  # type: ignore[dict-item]
                    }
                    extra[stream] = extra.get(stream, 0) + len(group) - 1
                pipe.xadd(stream, fields)
                groups.append(group)
        for stream, n in extra.items():
            pipe.hincrby(self._packed_key, stream, n)
        replies = pipe.execute()
        ids: list[str] = [""] * len(payloads)
        for group, raw in zip(groups, replies, strict=False):
            entry = raw.decode()
            if len(group) == 1:
                ids[group[0]] = entry
            else:
                for i, suffix in zip(group, _suffixes(len(group)), strict=True):
                    ids[i] = entry + suffix
        return ids

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

    def _messages(
        self, topic: str, part: int, entries: list, group: str | None = None
    ) -> list[Message]:
        """Entries as messages, a packed entry as one per event (those this client has
        not acked yet, when ``group`` is given)."""
        out = []
        stream = self._stream(topic, part)
        for raw_id, fields in entries:
            if not fields:  # an entry deleted while pending: nothing left to deliver
                continue
            entry_id = raw_id.decode()
            position = _position(entry_id)
            size = fields.get(b"n")
            if size is None:
                key = fields.get(b"k")
                out.append(
                    Message(
                        topic,
                        part,
                        entry_id,
                        position,
                        key.decode() if key is not None else None,
                        decode(fields[b"v"]),
                    )
                )
                continue
            n = int(size)
            done = self._partial.get((stream, group, entry_id), ()) if group else ()
            payloads, keys = decode(fields[b"v"]), decode(fields[b"k"])
            if not len(payloads) == len(keys) == n:
                raise IntegrityError(
                    f"packed entry {entry_id} of {stream} says {n} events but holds "
                    f"{len(payloads)} payloads and {len(keys)} keys",
                    key=stream,
                )
            for i, (payload, key) in enumerate(zip(payloads, keys, strict=True)):
                if i not in done:
                    out.append(
                        Message(topic, part, f"{entry_id}:{i}/{n}", (*position, i), key, payload)
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
        most = max(self._most.get(s, 0) for s in streams)
        reply = self._redis.xreadgroup(
            group, consumer, streams, count=max(1, count // most) if most else 1, block=block_ms
        )
        if not reply:
            return out
        for stream, entries in reply:
            name = stream.decode()
            got = self._messages(topic, index[name], entries)
            if got:  # handed over first by the read below, which tops it up to ``count``
                self._carry[(name, group, consumer)] = MessageBatch.from_messages(got, topic)
        return self._read_new(topic, group, consumer, count, parts)

    def _read_new(
        self, topic: str, group: str, consumer: str, count: int, parts: list[int]
    ) -> MessageBatch:
        """``XREADGROUP >`` on each partition inside one server-side script.

        The script returns each partition's events as a handful of strings (ids, keys,
        the stored payloads joined into one JSON array, entry sizes), so the client
        parses a few replies per batch instead of seven RESP elements per message; the
        entries are delivered and pending exactly as with a plain ``XREADGROUP``.
        """
        read = _Read(self, topic, group, consumer, count, parts)
        if not read.streams:
            return read.finish(None)
        if self._read_script is None:
            self._read_script = self._redis.register_script(_READ_NEW)
        try:
            reply = self._read_script(keys=read.streams, args=read.args)
        except BaseException:
            read.restore()
            raise
        return read.finish(reply)

    def read_ahead(self, topic: str, group: str, consumer: str, count: int = 100) -> ReadAhead:
        """Send the next batch's read now, on a connection of its own; the reply is read
        (and decoded) when :meth:`ReadAhead.result` is called.

        The Redis server prepares the batch while the caller works on the previous one --
        no thread: the command is simply not waited for. Entries are delivered (pending)
        from the moment the server runs it, exactly as with :meth:`consume_batch`.
        """
        self._check_open()
        check_count(count)
        read = _Read(self, topic, group, consumer, count, self._select(topic, None))
        if not read.streams:  # events left over from a packed entry are enough
            return ReadAhead(lambda: read.finish(None), read.restore)
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
            conn.send_command("EVALSHA", script.sha, len(read.streams), *read.streams, *read.args)
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            read.restore()
            raise

        def finish() -> MessageBatch:
            try:
                reply = conn.read_response()
            except NoScriptError:  # the server lost its scripts: read again
                pool.release(conn)
                self._read_loaded = False
                try:
                    reply = script(keys=read.streams, args=read.args)
                except BaseException:
                    read.restore()
                    raise
                return read.finish(reply)
            except BaseException:
                conn.disconnect()
                pool.release(conn)
                read.restore()
                raise
            pool.release(conn)
            return read.finish(reply)

        def cancel() -> None:
            conn.disconnect()  # its reply is never read: the connection must not be reused
            pool.release(conn)
            read.restore()

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
            self._carry.pop((stream, group, consumer), None)  # pending: recovered below
            last = "0"
            found: list[Message] = []
            while True:
                reply = self._redis.xreadgroup(group, consumer, {stream: last}, count=_PAGE)
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                found.extend(self._messages(topic, part, entries, group))
                last = entries[-1][0].decode()
            if found:
                counts = self._delivery_counts(stream, group, consumer)
                found = [_with_deliveries(m, counts.get(_entry_of(m.id), 2)) for m in found]
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
                found.extend(self._messages(topic, part, entries, group))
                start = next_start.decode() if isinstance(next_start, bytes) else next_start
                if start == "0-0":
                    break
            if found:
                counts = self._delivery_counts(stream, group, consumer)
                found = [_with_deliveries(m, counts.get(_entry_of(m.id), 2)) for m in found]
                self._drop_carried(stream, group, {_entry_of(m.id) for m in found})
            out.extend(found)
        return out

    def _drop_carried(self, stream: str, group: str, entries: set[str]) -> None:
        """Forget events left over for any consumer of this client from ``entries`` (they
        were claimed by another consumer)."""
        for k, batch in list(self._carry.items()):
            if k[0] == stream and k[1] == group:
                keep = [i for i, m in enumerate(batch.ids) if _entry_of(m) not in entries]
                if len(keep) < len(batch):
                    self._carry[k] = _pick(batch, keep)
                    if not keep:
                        del self._carry[k]

    def ack(self, topic: str, group: str, messages: Iterable[Message] | MessageBatch) -> int:
        self._check_open()
        if isinstance(messages, MessageBatch):
            parts, ids, positions = messages.partitions, messages.ids, messages.positions
        else:
            ms = list(messages)
            parts = [m.partition for m in ms]
            ids = [m.id for m in ms]
            positions = [m.position for m in ms]
        if not ids:
            return 0
        if max(map(len, positions)) == 2:  # no packed entry among them
            by_part: dict[int, list[str]] = {}
            one = set(parts)
            if len(one) == 1:
                by_part[one.pop()] = ids
            else:
                for part, entry_id in zip(parts, ids, strict=True):
                    by_part.setdefault(part, []).append(entry_id)
        else:
            by_part = {
                p: t for p, t in self._ack_tokens(topic, group, parts, ids, positions).items() if t
            }
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

    def _ack_tokens(
        self,
        topic: str,
        group: str,
        parts: list[int],
        ids: list[str],
        positions: list[Position],
    ) -> dict[int, list[str]]:
        """The ack script's tokens per partition when packed entries are among the acked:
        an entry with all its events acked -- now or, remembered here, earlier -- is
        XACK-ed, one with some is remembered."""
        one = set(parts)
        if len(one) == 1:  # the usual ack: one partition
            return {one.pop(): self._entry_tokens(topic, group, parts[0], ids, positions)}
        by_part: dict[int, tuple[list[str], list[Position]]] = {}
        for part, position, message_id in zip(parts, positions, ids, strict=True):
            got = by_part.setdefault(part, ([], []))
            got[0].append(message_id)
            got[1].append(position)
        return {
            part: self._entry_tokens(topic, group, part, part_ids, part_positions)
            for part, (part_ids, part_positions) in by_part.items()
        }

    def _entry_tokens(
        self, topic: str, group: str, part: int, ids: list[str], positions: list[Position]
    ) -> list[str]:
        """Tokens for one partition's acked events."""
        stream = self._stream(topic, part)
        out: list[str] = []
        if all(map(operator.lt, positions, islice(positions, 1, None))):
            runs = _runs_in_order(ids, positions)  # a consumer's receipts: O(entries)
        else:
            runs = _runs_any_order(ids, positions)
        for entry, n, indices in runs:
            if not n:
                out.append(entry)
                continue
            key = (stream, group, entry)
            done = self._partial.get(key)
            if done is None and len(indices) == n:  # the usual case: the whole entry at once
                out.append(f"{entry}*{n}")
                continue
            before = done or set()
            new = set(indices) - before
            if not new:
                continue
            if len(new) + len(before) >= n:
                self._partial.pop(key, None)
                out.append(f"{entry}*{len(new)}")
            else:
                self._partial[key] = before | new
                out.append(f"{entry}?{len(new)}")
        return out

    def pending(self, topic: str, group: str) -> int:
        """Events delivered to the group and not acked (of a packed entry, those this
        client has not acked)."""
        self._check_open()
        if self._pending_script is None:
            self._pending_script = self._redis.register_script(_PENDING)
        total = 0
        for part in range(self.partitions(topic)):
            stream = self._ensure_group(topic, group, part)
            partial = [
                x
                for (s, g, entry), done in self._partial.items()
                if s == stream and g == group
                for x in (entry, len(done))
            ]
            total += int(
                self._pending_script(keys=[stream, self._packed_key], args=[group, *partial])
            )
        return total

    def lag(self, topic: str, group: str) -> int:
        self._check_open()
        total = 0
        for part in range(self.partitions(topic)):
            stream = self._ensure_group(topic, group, part)
            if self._redis.hget(self._packed_key, stream):  # packed entries: count events
                if self._lag_script is None:
                    self._lag_script = self._redis.register_script(_LAG)
                total += int(self._lag_script(keys=[stream], args=[group]))
                continue
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
        self._carry.clear()
        self._partial.clear()
        self._most.clear()
        self._absent.clear()

    def close(self) -> None:
        if not self._closed:
            self._redis.close()
        super().close()


@dataclass
class _Read:
    """One read of new events for a consumer: what it takes from the events left over
    by earlier reads (``carried``), the script call for the rest, and the hand-over.

    ``count`` counts events per partition, as everywhere; events of a packed entry past
    it are left over for the consumer's next read.
    """

    queue: RedisStreamsQueue
    topic: str
    group: str
    consumer: str
    count: int
    parts: list[int]
    carried: dict[int, MessageBatch] = field(default_factory=dict)
    read_parts: list[int] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        q = self.queue
        self.args = [self.group, self.consumer]
        for part in self.parts:
            stream = q._ensure_group(self.topic, self.group, part)
            left = q._carry.pop((stream, self.group, self.consumer), None)
            have = 0
            if left is not None:
                self.carried[part] = left
                have = len(left)
            if have < self.count:
                self.read_parts.append(part)
                self.streams.append(stream)
                self.args += [self.count - have, q._most.get(stream, 0)]

    def restore(self) -> None:
        """The read failed or was dropped: what it took from the leftovers goes back."""
        for part, batch in self.carried.items():
            self.queue._carry[(self.queue._stream(self.topic, part), self.group, self.consumer)] = (
                batch
            )
        self.carried = {}

    def finish(self, reply: list[Any] | None) -> MessageBatch:
        """The script's reply (five strings per partition) plus leftovers, ``count`` per
        partition at most."""
        got: dict[int, MessageBatch] = {}
        for index, ids, keys, payloads, sizes in reply or []:
            part = self.read_parts[int(index) - 1]
            got[part] = _decode_read(self.queue, self.topic, part, ids, keys, payloads, sizes)
        q = self.queue
        out: MessageBatch | None = None
        for part in self.parts:
            batch = self.carried.get(part)
            new = got.get(part)
            if batch is None:
                batch = new
            elif new is not None:
                batch.extend(new)
            if batch is None or not len(batch):
                continue
            if len(batch) > self.count:
                stream = q._stream(self.topic, part)
                q._carry[(stream, self.group, self.consumer)] = _pick(
                    batch, range(self.count, len(batch))
                )
                batch = _pick(batch, range(self.count))
            if out is None:
                out = batch
            else:
                out.extend(batch)
        self.carried = {}
        return out if out is not None else MessageBatch.empty(self.topic)


def _decode_read(
    queue: RedisStreamsQueue,
    topic: str,
    part: int,
    ids: bytes,
    keys: bytes,
    payloads: bytes,
    sizes: bytes,
) -> MessageBatch:
    """One partition of the read script's reply as a :class:`MessageBatch`."""
    id_list = ids.decode().split(" ")
    # "ms-seq ms-seq" -> [ms, seq, ms, seq] in one parse -> [(ms, seq), ...]
    flat = decode(b"[" + ids.replace(b"-", b",").replace(b" ", b",") + b"]")
    stream = queue._stream(topic, part)
    if not sizes:
        positions: list[Position] = list(zip(flat[::2], flat[1::2], strict=True))
        queue._most[stream] = 1
    else:
        counts = decode(b"[" + sizes.replace(b" ", b",") + b"]")
        queue._most[stream] = max(max(counts), 1)
        event_ids: list[str] = []
        positions = []
        for entry, ms, seq, n in zip(id_list, flat[::2], flat[1::2], counts, strict=True):
            if n == 0:
                event_ids.append(entry)
                positions.append((ms, seq))
            else:
                event_ids += [entry + suffix for suffix in _suffixes(n)]
                positions += [(ms, seq, i) for i in range(n)]
        id_list = event_ids
    key_list, payload_list = decode(keys), decode(payloads)
    if not len(key_list) == len(payload_list) == len(id_list):
        raise IntegrityError(
            f"a read of {stream} found {len(id_list)} events but {len(payload_list)} payloads "
            f"and {len(key_list)} keys: a packed entry's count does not match its arrays",
            key=stream,
        )
    return MessageBatch(topic, [part] * len(id_list), id_list, positions, key_list, payload_list)


def _runs_in_order(
    ids: list[str], positions: list[Position]
) -> Iterator[tuple[str, int, Sequence[int]]]:
    """(entry id, events in the entry or 0 when plain, indices acked) of strictly
    increasing positions, looking at one or two events per entry.

    In increasing order an entry's events are adjacent, so when the event ``n - 1 - i``
    places after index ``i`` is the entry's last, the run holds exactly ``i .. n-1``.
    """
    k, total = 0, len(positions)
    while k < total:
        position = positions[k]
        if len(position) == 2:
            yield ids[k], 0, ()
            k += 1
            continue
        entry, _, rest = ids[k].partition(":")
        n = int(rest.partition("/")[2])
        first = position[2]
        last = k + n - 1 - first
        if last < total and positions[last] == (position[0], position[1], n - 1):
            yield entry, n, range(first, n)
            k = last + 1
            continue
        head = position[:2]
        end = k + 1
        while end < total and positions[end][:2] == head:
            end += 1
        yield entry, n, [p[2] for p in positions[k:end]]
        k = end


def _runs_any_order(
    ids: list[str], positions: list[Position]
) -> Iterator[tuple[str, int, Sequence[int]]]:
    """:func:`_runs_in_order` for events in any order, repeats included."""
    runs: dict[Position, tuple[str, int, set[int]]] = {}
    for message_id, position in zip(ids, positions, strict=True):
        head = position[:2]
        run = runs.get(head)
        if run is None:
            entry, packed, rest = message_id.partition(":")
            run = runs[head] = (entry, int(rest.partition("/")[2]) if packed else 0, set())
        if len(position) > 2:
            run[2].add(position[2])
    for entry, n, indices in runs.values():
        yield entry, n, sorted(indices)


def _pick(batch: MessageBatch, rows: Iterable[int]) -> MessageBatch:
    """The messages of ``batch`` at ``rows`` (a range or a list of indices)."""
    if isinstance(rows, range) and rows.step == 1:
        sl = slice(rows.start, rows.stop)
        return MessageBatch(
            batch.topic,
            batch.partitions[sl],
            batch.ids[sl],
            batch.positions[sl],
            batch.keys[sl],
            batch.payloads[sl],
            batch.deliveries[sl],
        )
    rows = list(rows)
    return MessageBatch(
        batch.topic,
        [batch.partitions[i] for i in rows],
        [batch.ids[i] for i in rows],
        [batch.positions[i] for i in rows],
        [batch.keys[i] for i in rows],
        [batch.payloads[i] for i in rows],
        [batch.deliveries[i] for i in rows],
    )


def _with_deliveries(message: Message, deliveries: int) -> Message:
    from dataclasses import replace

    return replace(message, deliveries=deliveries)
