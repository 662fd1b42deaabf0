/**
 * One suite, two transports: the in-memory network used by simulations must behave like the WebSocket transport
 * in everything the mesh relies on. MemoryNetwork runs on the system clock here so both run the same async code.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../runtime/clock.js';
import { MemoryNetwork } from './memory-transport.js';
import type { Transport, TransportConnection, TransportListener, TransportRefusal } from './transport.js';
import { truncateCloseReason, WsTransport } from './ws-transport.js';

interface Pair {
  server: Transport;
  client: Transport;
  /** What to listen on (port 0 picks a free one). */
  listenAddr: string;
  maxPayloadBytes: number;
}

const cases: Array<[string, () => Pair]> = [
  [
    'MemoryNetwork',
    () => {
      const net = new MemoryNetwork(systemClock, { latencyMs: 1, maxPayloadBytes: 4096 });
      return { server: net.transport('10.0.0.1'), client: net.transport('10.0.0.2'), listenAddr: '0.0.0.0:6783', maxPayloadBytes: 4096 };
    },
  ],
  [
    'WsTransport',
    () => {
      const t = new WsTransport({ maxPayloadBytes: 4096 });
      return { server: t, client: new WsTransport({ maxPayloadBytes: 4096 }), listenAddr: '127.0.0.1:0', maxPayloadBytes: 4096 };
    },
  ],
];

function nextMessage(conn: TransportConnection, inbox: Uint8Array[]): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const poll = () => (inbox.length > 0 ? resolve(inbox.shift()!) : setTimeout(poll, 2));
    poll();
  });
}

function closed(conn: TransportConnection): Promise<string> {
  return new Promise((resolve) => conn.onClose(resolve));
}

describe.each(cases)('Transport contract: %s', (_name, make) => {
  const listeners: TransportListener[] = [];
  const conns: TransportConnection[] = [];
  afterEach(async () => {
    for (const c of conns.splice(0)) c.close('test over');
    for (const l of listeners.splice(0)) await l.close();
  });

  async function connected(
    pair: Pair,
  ): Promise<{ a: TransportConnection; b: TransportConnection; bInbox: Uint8Array[]; aInbox: Uint8Array[]; listener: TransportListener }> {
    let accept!: (c: TransportConnection) => void;
    const accepted = new Promise<TransportConnection>((r) => (accept = r));
    const bInbox: Uint8Array[] = [];
    const listener = await pair.server.listen(pair.listenAddr, (c) => {
      c.onMessage((m) => bInbox.push(m));
      accept(c);
    });
    listeners.push(listener);
    const a = await pair.client.dial(listener.address, 2000);
    const aInbox: Uint8Array[] = [];
    a.onMessage((m) => aInbox.push(m));
    const b = await accepted;
    conns.push(a, b);
    return { a, b, aInbox, bInbox, listener };
  }

  it('delivers binary messages intact and in order both ways', async () => {
    const { a, b, aInbox, bInbox } = await connected(make());
    for (let i = 0; i < 20; i++) a.send(new Uint8Array([i, 0, 255, i]));
    b.send(new Uint8Array([9, 9]));
    for (let i = 0; i < 20; i++) expect([...(await nextMessage(b, bInbox))]).toEqual([i, 0, 255, i]);
    expect([...(await nextMessage(a, aInbox))]).toEqual([9, 9]);
  });

  it('reports direction and remote addresses', async () => {
    const { a, b, listener } = await connected(make());
    expect(a.isOutbound).toBe(true);
    expect(b.isOutbound).toBe(false);
    expect(a.remoteAddr).toBe(listener.address);
    expect(b.remoteHost).toMatch(/^10\.0\.0\.2$|^127\.0\.0\.1$/);
    expect(b.remoteAddr.startsWith(`${b.remoteHost}:`)).toBe(true);
  });

  it('carries the close reason to the other side, once, truncated to 123 bytes', async () => {
    const { a, b } = await connected(make());
    const long = `duplicate connection ${'x'.repeat(200)}`;
    const remote = closed(b);
    let localCount = 0;
    a.onClose(() => localCount++);
    a.close(long);
    a.close('again');
    const reason = await remote;
    expect(reason).toBe(truncateCloseReason(long));
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
    expect(localCount).toBe(1);
    a.send(new Uint8Array([1])); // dropped silently after close
  });

  it('closes a connection that receives a message over the payload limit', async () => {
    const pair = make();
    const { a, b } = await connected(pair);
    const atB = closed(b);
    const atA = closed(a);
    a.send(new Uint8Array(pair.maxPayloadBytes + 1));
    expect(await atB).toMatch(/too big/);
    expect(await atA).toMatch(/too big|closed|lost/);
  });

  it('refuses a message over setMaxMessageBytes on that connection only, and Infinity lifts it', async () => {
    const pair = make();
    const one = await connected(pair);
    one.b.setMaxMessageBytes(64);
    one.a.send(new Uint8Array(64));
    expect((await nextMessage(one.b, one.bInbox)).length).toBe(64);
    const atB = closed(one.b);
    one.a.send(new Uint8Array(65));
    expect(await atB).toBe('message too big');
    const two = await connected(make());
    two.b.setMaxMessageBytes(64);
    two.b.setMaxMessageBytes(Infinity);
    two.a.send(new Uint8Array(pair.maxPayloadBytes));
    expect((await nextMessage(two.b, two.bInbox)).length).toBe(pair.maxPayloadBytes);
  });

  it('hands over a remote close reason without control characters (no terminal escapes in logs)', async () => {
    const { a, b } = await connected(make());
    const remote = closed(b);
    a.close('bye\x1b[2J\x1b]0;owned\x07\u202enext\nline');
    expect(await remote).toBe('bye\ufffd[2J\ufffd]0;owned\ufffd\ufffdnext\ufffdline');
  });

  it('rejects a dial to an address nobody listens on', async () => {
    const pair = make();
    const l = await pair.server.listen(pair.listenAddr, () => {});
    const addr = l.address;
    await l.close();
    await expect(pair.client.dial(addr, 1000)).rejects.toThrow(/refused|closed|ECONNREFUSED|timed out/);
  });

  it('keeps truncation on a UTF-8 boundary', () => {
    const r = truncateCloseReason('é'.repeat(100));
    expect(Buffer.byteLength(r)).toBeLessThanOrEqual(123);
    expect(r).toBe('é'.repeat(61));
  });
});

describe('WsTransport specifics', () => {
  it('a router stopping (close every inbound connection, then the listener) still gets its reason to the dialer', async () => {
    const t = new WsTransport();
    const inbound: TransportConnection[] = [];
    const l = await t.listen('127.0.0.1:0', (c) => inbound.push(c));
    const dialer = await t.dial(l.address, 5_000);
    const reason = new Promise<string>((resolve) => dialer.onClose(resolve));
    for (let i = 0; i < 100 && inbound.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(inbound).toHaveLength(1);
    inbound[0]!.close('router stopping');
    await l.close();
    expect(await reason).toBe('router stopping');
  });

  it('never lets a socket error escape: a garbage client is dropped, the listener keeps working', async () => {
    const { createConnection } = await import('node:net');
    const t = new WsTransport();
    const seen: TransportConnection[] = [];
    const l = await t.listen('127.0.0.1:0', (c) => seen.push(c));
    try {
      const port = Number(l.address.split(':').pop());
      await new Promise<void>((resolve) => {
        const s = createConnection({ host: '127.0.0.1', port }, () => s.end('\u0000\u0001garbage\r\n\r\n'));
        s.on('error', () => {});
        s.resume(); // read the 400 answer so the socket can end
        s.on('close', () => resolve());
      });
      const c = await t.dial(l.address, 1000);
      c.close('done');
      expect(seen.length).toBe(1);
    } finally {
      await l.close();
    }
  });

  async function rawHttp(port: number, request: string): Promise<string> {
    const { createConnection } = await import('node:net');
    return new Promise((resolve) => {
      let got = '';
      const s = createConnection({ host: '127.0.0.1', port }, () => s.write(request));
      s.on('data', (d) => {
        got += String(d);
        if (got.includes('\r\n\r\n')) s.destroy(); // the status line and headers are all we read
      });
      s.on('error', () => {});
      s.on('close', () => resolve(got));
    });
  }
  const upgrade = (extra: string) =>
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

  it('refuses a browser (an upgrade with an Origin header) with 403, and plain HTTP with 426, reporting each', async () => {
    const t = new WsTransport();
    const seen: TransportConnection[] = [];
    const refusals: TransportRefusal[] = [];
    const l = await t.listen(
      '127.0.0.1:0',
      (c) => seen.push(c),
      (r) => refusals.push(r),
    );
    try {
      const port = Number(l.address.split(':').pop());
      expect(await rawHttp(port, upgrade('Origin: http://evil.example\r\n'))).toMatch(/^HTTP\/1\.1 403 Forbidden/);
      expect(await rawHttp(port, 'GET /stop HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 426/);
      expect(seen).toEqual([]);
      expect(refusals.map((r) => [r.reason, r.remoteHost])).toEqual([
        ['browser_origin_refused', '127.0.0.1'],
        ['http_request_refused', '127.0.0.1'],
      ]);
      expect(await rawHttp(port, upgrade(''))).toMatch(/^HTTP\/1\.1 101/); // a router's upgrade still works
    } finally {
      await l.close();
    }
  });

  it('closes a socket that does not upgrade in time, and caps sockets waiting to upgrade per address', async () => {
    const { createConnection } = await import('node:net');
    const t = new WsTransport({ upgradeTimeoutMs: 300, maxUpgradingPerAddress: 2 });
    const refusals: string[] = [];
    const l = await t.listen(
      '127.0.0.1:0',
      () => {},
      (r) => refusals.push(r.reason),
    );
    try {
      const port = Number(l.address.split(':').pop());
      const open = () =>
        new Promise<number>((resolve) => {
          const started = Date.now();
          const s = createConnection({ host: '127.0.0.1', port });
          s.on('error', () => {});
          s.on('close', () => resolve(Date.now() - started));
        });
      const lives = await Promise.all([open(), open(), new Promise((r) => setTimeout(r, 50)).then(open)]);
      expect(refusals.sort()).toEqual(['upgrade_cap_address', 'upgrade_timeout', 'upgrade_timeout']);
      expect(Math.min(...lives)).toBeLessThan(250); // the third, closed at once
    } finally {
      await l.close();
    }
  });

  it('refuses an over-limit message before buffering it: the sender sees 1009', async () => {
    const t = new WsTransport();
    let server!: TransportConnection;
    const l = await t.listen('127.0.0.1:0', (c) => {
      server = c;
      c.setMaxMessageBytes(4096);
    });
    try {
      const { WebSocket } = await import('ws');
      const ws = new WebSocket(`ws://${l.address}/`);
      await new Promise((r) => ws.once('open', r));
      const code = new Promise<number>((r) => ws.once('close', (c: number) => r(c)));
      ws.send(new Uint8Array(256 * 1024));
      expect(await code).toBe(1009);
      expect(await closed(server)).toBe('message too big');
    } finally {
      await l.close();
    }
  });

  it('times out a dial to a silent TCP listener', async () => {
    const { createServer } = await import('node:net');
    const held: Array<import('node:net').Socket> = [];
    const server = createServer((s) => held.push(s)); // accepts TCP, never answers the upgrade
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (server.address() as { port: number }).port;
      await expect(new WsTransport().dial(`127.0.0.1:${port}`, 100)).rejects.toThrow(/timed out|timeout/i);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('MemoryNetwork specifics', () => {
  it('a partition closes open connections and makes dials fail until healed', async () => {
    const net = new MemoryNetwork(systemClock, { latencyMs: 0 });
    const a = net.transport('h1');
    const b = net.transport('h2');
    await b.listen('0.0.0.0:6783', () => {});
    const c = await a.dial('h2:6783', 50);
    const gone = closed(c);
    net.partition('h1', 'h2:6783');
    expect(await gone).toMatch(/partition/);
    await expect(a.dial('h2:6783', 20)).rejects.toThrow(/timed out/);
    net.heal('h1', 'h2');
    const again = await a.dial('h2:6783', 50);
    again.close('done');
  });

  it('a killed listener refuses new dials', async () => {
    const net = new MemoryNetwork(systemClock, { latencyMs: 0 });
    await net.transport('h2').listen('0.0.0.0:6783', () => {});
    net.killListener('h2:6783');
    await expect(net.transport('h1').dial('h2:6783', 50)).rejects.toThrow(/refused/);
  });
});
