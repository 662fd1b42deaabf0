#!/usr/bin/env node
// Micro-benchmark of the two underlays' send paths over loopback: node:dgram `send` vs the addon's `udpSendBatch`
// (sendmmsg, 64 per call), for 64- and 1400-byte datagrams, median of 3 runs of `--seconds` each (default 1).
// A sink in a child process (the addon's recvmmsg reader, on the other core) counts what arrived, so "recv/s" shows
// what the kernel delivered, not just what it accepted. Loopback only; every loop is bounded in time and count.
//
//   npm run build:native && node scripts/bench-underlay.mjs [--seconds 1]
import { createRequire } from 'node:module';
import { createSocket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = createRequire(import.meta.url)(join(root, 'native', 'build', 'Release', 'weft_native.node'));
const LOOPBACK = 0x7f000001;
const BATCH = 64;
const MAX_DATAGRAMS_PER_RUN = 50_000_000;

if (process.argv[2] === '--sink') {
  // Child: count datagrams; answer "count" with the total since the last "reset".
  const sock = native.udpOpen('127.0.0.1', 0);
  const slotBytes = 2048;
  const buffer = Buffer.alloc(BATCH * slotBytes);
  let received = 0;
  const reader = native.udpReaderStart(
    sock.fd,
    buffer,
    new Uint32Array(BATCH),
    new Uint32Array(BATCH),
    new Uint32Array(BATCH),
    new Uint16Array(BATCH),
    slotBytes,
    0,
    (count) => {
      if (count > 0) received += count;
    },
  );
  console.log(`PORT ${sock.port}`);
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      if (line === 'reset') {
        received = 0;
        console.log('OK');
      } else if (line === 'count') console.log(`COUNT ${received}`);
    })
    .on('close', () => {
      native.readerStop(reader);
      native.fdClose(sock.fd);
    });
} else {
  await main();
}

async function main() {
  const secondsArg = process.argv.indexOf('--seconds');
  const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;
  const sink = spawn(process.execPath, [fileURLToPath(import.meta.url), '--sink'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: sink.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const ask = (command) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      if (command) sink.stdin.write(`${command}\n`);
    });
  const port = Number((await ask()).split(' ')[1]);
  try {
    console.log(`loopback UDP send, ${seconds}s per run, median of 3 (sink: native recvmmsg in a child process)`);
    console.log('impl            bytes     sent/s      recv/s');
    for (const size of [64, 1400]) {
      for (const [name, run] of [
        ['dgram', runDgram],
        ['native sendmmsg', runNative],
      ]) {
        const results = [];
        for (let i = 0; i < 3; i++) {
          await ask('reset');
          const { sent, elapsedS } = await run(size, port, seconds);
          await new Promise((r) => setTimeout(r, 200)); // let the sink drain
          const received = Number((await ask('count')).split(' ')[1]);
          results.push({ sentPerS: sent / elapsedS, recvPerS: received / elapsedS });
        }
        const median = (key) => results.map((r) => r[key]).sort((a, b) => a - b)[1];
        console.log(`${name.padEnd(15)} ${String(size).padStart(5)} ${fmt(median('sentPerS'))} ${fmt(median('recvPerS'))}`);
      }
    }
  } finally {
    sink.stdin.end();
    if (sink.exitCode === null) sink.kill('SIGTERM');
  }
}

function fmt(n) {
  return (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(0)}k`).padStart(11);
}

async function runNative(size, port, seconds) {
  const sock = native.udpOpen('127.0.0.1', 0);
  const buffer = Buffer.alloc(BATCH * size, 0xab);
  const offsets = new Uint32Array(BATCH).map((_, i) => i * size);
  const lengths = new Uint32Array(BATCH).fill(size);
  const addrs = new Uint32Array(BATCH).fill(LOOPBACK);
  const ports = new Uint16Array(BATCH).fill(port);
  const drops = new Float64Array(2);
  let sent = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < end && sent < MAX_DATAGRAMS_PER_RUN) {
    sent += native.udpSendBatch(sock.fd, buffer, offsets, lengths, addrs, ports, BATCH, drops);
  }
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  native.fdClose(sock.fd);
  return { sent, elapsedS };
}

async function runDgram(size, port, seconds) {
  const sock = createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
  await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve));
  const payload = Buffer.alloc(size, 0xab);
  let sent = 0;
  let inFlight = 0;
  const onSent = (err) => {
    inFlight--;
    if (!err) sent++;
  };
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let issued = 0;
  while (process.hrtime.bigint() < end && issued < MAX_DATAGRAMS_PER_RUN) {
    // dgram sends on a later tick (address lookup), so yield after each batch or nothing leaves.
    for (let i = 0; i < BATCH; i++) {
      inFlight++;
      issued++;
      sock.send(payload, port, '127.0.0.1', onSent);
    }
    await new Promise((r) => setImmediate(r));
  }
  while (inFlight > 0) await new Promise((r) => setImmediate(r));
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  await new Promise((r) => sock.close(r));
  return { sent, elapsedS };
}
