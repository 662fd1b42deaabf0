// TCP stall for scripts/bench-faults.sh: the longest time a paced TCP stream delivers nothing.
//   node tcp-stall.mjs server PORT SECONDS    accept one connection; after SECONDS (or its end) print the longest
//                                             gap between two reads in ms, and the bytes received, as JSON
//   node tcp-stall.mjs client ADDR PORT SECONDS   write 64 KiB every 5 ms (about 100 Mbit/s) for SECONDS
// Paced, not as fast as possible: the figure is how long the path is gone, not how long a saturated machine takes.
import net from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

if (mode === 'server') {
  const port = Number(args[0]);
  const seconds = Number(args[1]);
  const server = net.createServer((socket) => {
    let last = -1;
    let longestMs = 0;
    let bytes = 0;
    const finish = () => {
      console.log(JSON.stringify({ longest_gap_ms: Math.round(longestMs), bytes }));
      process.exit(0);
    };
    socket.on('data', (d) => {
      const now = performance.now();
      if (last >= 0) longestMs = Math.max(longestMs, now - last);
      last = now;
      bytes += d.length;
    });
    socket.on('end', finish);
    socket.on('error', finish);
    setTimeout(finish, seconds * 1000).unref();
    server.close();
  });
  server.listen(port, () => console.error('listening'));
  setTimeout(
    () => {
      console.log(JSON.stringify({ error: 'no connection' }));
      process.exit(1);
    },
    (seconds + 30) * 1000,
  ).unref();
} else if (mode === 'client') {
  const [addr, port, seconds] = [args[0], Number(args[1]), Number(args[2])];
  const socket = net.connect(port, addr, () => {
    const end = Date.now() + seconds * 1000;
    const timer = setInterval(() => {
      if (Date.now() >= end) {
        clearInterval(timer);
        socket.end();
        return;
      }
      // Keep at most a few chunks queued: a stall shows as a gap at the receiver, not as a burst later.
      if (socket.writableLength < 4 * CHUNK.length) socket.write(CHUNK);
    }, 5);
  });
  socket.on('error', (err) => {
    console.error(`tcp-stall client: ${err.message}`);
    process.exit(1);
  });
} else {
  console.error('usage: tcp-stall.mjs server PORT SECONDS | client ADDR PORT SECONDS');
  process.exit(2);
}
