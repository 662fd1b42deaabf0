/**
 * The weftDNS server on loopback: real UDP and TCP sockets, dns-packet clients. Truncation and the TCP retry,
 * FORMERR and drops for bad packets, forwarding with failover to a second upstream when the first is silent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import { AnswerBuilder, Flags, Rcode } from '../dns/answer.js';
import { RecordStore } from '../dns/record-store.js';
import { DnsServer } from '../dns/server.js';
import { Upstream } from '../dns/upstream.js';
import { systemClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { tcpAsk, udpAsk } from './harness/dns-client.js';

function dataOf(a: Answer): unknown {
  return (a as { data?: unknown }).data;
}

function query(name: string, type = 'A', id = 7): Buffer {
  return dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }] });
}

describe('DnsServer on loopback', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-dns-'));
  const resolvConf = join(dir, 'resolv.conf');
  const records = new RecordStore();
  let server: DnsServer;
  let upstream: Upstream;
  let port: number;
  const fakes: Socket[] = [];
  let upstreamPort = 0;

  beforeAll(async () => {
    // Upstream B (127.0.0.3) answers every question with 192.0.2.1; upstream A (127.0.0.2, same port) is silent.
    const b = createSocket('udp4');
    b.on('message', (m, r) => {
      const q = dnsPacket.decode(m);
      b.send(
        dnsPacket.encode({
          id: q.id!,
          type: 'response',
          flags: Flags.RA | Flags.RD,
          questions: q.questions!,
          answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 30, data: '192.0.2.1' }],
        }),
        r.port,
        r.address,
      );
    });
    await new Promise<void>((r) => b.bind(0, '127.0.0.3', () => r()));
    upstreamPort = b.address().port;
    const a = createSocket('udp4');
    await new Promise<void>((r) => a.bind(upstreamPort, '127.0.0.2', () => r()));
    fakes.push(a, b);
    writeFileSync(resolvConf, 'search example\nnameserver 127.0.0.2\nnameserver 127.0.0.3\n');
    const big = Array.from({ length: 60 }, (_, i) => ({
      owner: '02:00:00:00:00:01',
      name: 'big.weft.local.',
      address: `10.32.1.${i + 1}`,
      version: 1,
      isTombstone: false,
      expiresAtMs: Infinity,
    }));
    records.merge({
      entries: [
        ...big,
        {
          owner: '02:00:00:00:00:01',
          name: 'web.weft.local.',
          address: '10.32.0.5',
          version: 1,
          isTombstone: false,
          expiresAtMs: Infinity,
        },
      ],
      removals: [],
    });
    upstream = new Upstream({ clock: systemClock, log: silentLogger }, { resolvConf, attemptTimeoutMs: 300, port: upstreamPort });
    await upstream.start();
    server = new DnsServer(
      {
        log: silentLogger,
        answers: new AnswerBuilder(records, { domain: 'weft.local.', ttlSeconds: 1, reverseRanges: ['10.32.0.0/12'] }),
        upstream,
      },
      { host: '127.0.0.1', port: 0 },
    );
    await server.start();
    port = Number(server.address.split(':')[1]);
  });

  afterAll(async () => {
    await server?.stop();
    upstream?.stop();
    for (const f of fakes) f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers A over UDP and over TCP', async () => {
    const u = dnsPacket.decode((await udpAsk(port, query('web.weft.local')))!);
    expect(u.answers!.map(dataOf)).toEqual(['10.32.0.5']);
    const t = dnsPacket.decode(await tcpAsk(port, query('WEB.weft.local')));
    expect(t.answers!.map(dataOf)).toEqual(['10.32.0.5']);
  });

  it('sets TC on a UDP answer over 512 bytes, and serves the whole answer over TCP', async () => {
    const u = dnsPacket.decode((await udpAsk(port, query('big.weft.local')))!);
    expect((u.flags ?? 0) & Flags.TC).toBe(Flags.TC);
    expect(u.answers).toEqual([]);
    expect(u.questions![0]!.name).toBe('big.weft.local');
    const t = dnsPacket.decode(await tcpAsk(port, query('big.weft.local')));
    expect((t.flags ?? 0) & Flags.TC).toBe(0);
    expect(t.answers).toHaveLength(60);
    // With EDNS and a large enough buffer the answer fits in UDP.
    const edns = dnsPacket.encode({
      id: 9,
      type: 'query',
      questions: [{ name: 'big.weft.local', type: 'A' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as never],
    });
    expect(dnsPacket.decode((await udpAsk(port, edns))!).answers).toHaveLength(60);
  });

  it('answers FORMERR (with the id) to a query that does not decode, and drops short packets and responses', async () => {
    const bad = Buffer.from(query('web.weft.local', 'A', 0x1234));
    bad[12] = 0x3f; // a label length running past the end
    const r = (await udpAsk(port, bad))!;
    expect(r.readUInt16BE(0)).toBe(0x1234);
    expect(r.readUInt16BE(2) & 0xf).toBe(Rcode.FORMERR);
    const before = { ...server.counters };
    expect(await udpAsk(port, Buffer.from([1, 2, 3]), '127.0.0.1', 300)).toBeNull();
    const response = dnsPacket.encode({ id: 1, type: 'response', questions: [{ name: 'x', type: 'A' }] });
    expect(await udpAsk(port, response, '127.0.0.1', 300)).toBeNull();
    expect(server.counters.dns_dropped_short).toBe(before.dns_dropped_short + 1);
    expect(server.counters.dns_dropped_response).toBe(before.dns_dropped_response + 1);
    // Still answering.
    expect(dnsPacket.decode((await udpAsk(port, query('web.weft.local')))!).answers).toHaveLength(1);
  });

  it('forwards other names upstream, failing over from a silent server to the next', async () => {
    const r = dnsPacket.decode((await udpAsk(port, query('www.example.org', 'A', 0x4321)))!);
    expect(r.id).toBe(0x4321);
    expect(r.answers!.map(dataOf)).toEqual(['192.0.2.1']);
    expect(upstream.counters.dns_upstream_timeouts).toBeGreaterThan(0);
    expect(upstream.list()).toEqual(['127.0.0.2', '127.0.0.3']);
  });

  it('answers SERVFAIL when no upstream answers', async () => {
    writeFileSync(resolvConf, 'nameserver 127.0.0.2\n');
    await new Promise((r) => setTimeout(r, 1100)); // the resolv.conf is re-read at most once a second
    const first = dnsPacket.decode((await udpAsk(port, query('x.example.org')))!) as Packet;
    expect((first.flags ?? 0) & 0xf).toBe(Rcode.SERVFAIL);
  });
});
