/**
 * Tiny DNS clients for tests: one query over UDP (null when nothing answers in time) or over TCP (length-prefixed).
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

/** Send `bytes` to host:port over UDP; resolve the first datagram back, or null after `timeoutMs`. */
export function udpAsk(port: number, bytes: Buffer, host = '127.0.0.1', timeoutMs = 3000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(bytes, port, host);
  });
}

/**
 * Send `bytes` over TCP (2-byte length prefix) and resolve one framed answer; rejects when the server closes the
 * connection without one or after `timeoutMs`.
 */
export function tcpAsk(port: number, bytes: Buffer, host = '127.0.0.1', timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no TCP answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(bytes.length);
      s.write(Buffer.concat([len, bytes]));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        s.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`${host}:${port} closed the TCP connection without an answer`));
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
