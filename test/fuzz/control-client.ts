/**
 * A control connection driven by hand, for the control fuzzer: dial with the real WebSocket transport, say a hello
 * (possibly mutated), do the handshake with crypto/'s PasswordSecurity like a router would (so frames after it are
 * sealed under the real control keys), then send whatever frames the fuzzer makes. It records why the remote closed,
 * and keeps samples of the gossip the remote sent (real payloads to mutate).
 */
import type { Transport, TransportConnection } from '../../gossip/transport.js';
import { decodeHello, encodeHello, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, type Hello } from '../../gossip/handshake.js';
import type { ConnectionSecurity, SecureSession, SecurityHandshake } from '../../crypto/connection-security.js';

/** Frame types of docs/control-protocol.md section 3. */
export const Frame = { Heartbeat: 1, Gossip: 2, Broadcast: 3, Unicast: 4, Rekey: 5 } as const;

export interface HelloPlan {
  name: string;
  uid: string;
  nickname: string;
  /** Replace the encoded hello (a mutation); receives the valid encoding. @default none */
  mutate?: (valid: Buffer, hello: Hello) => Buffer;
  /** Replace our confirmation (a mutation). @default none */
  mutateConfirmation?: (valid: Buffer) => Buffer;
}

export class ControlClient {
  phase: 'hello' | 'confirming' | 'ready' | 'closed' = 'hello';
  closeReason: string | null = null;
  session: SecureSession | null = null;
  remote: Hello | null = null;
  private handshake: SecurityHandshake | null = null;
  private closeWaiters: Array<() => void> = [];
  private readyWaiters: Array<() => void> = [];

  private constructor(
    private readonly t: TransportConnection,
    private readonly plan: HelloPlan,
    private readonly samples: Map<string, Buffer[]>,
  ) {}

  /** Dial `addr`, send the hello, and run the handshake as far as the remote lets us. */
  static async open(
    transport: Transport,
    addr: string,
    security: ConnectionSecurity | undefined,
    plan: HelloPlan,
    samples: Map<string, Buffer[]>,
  ): Promise<ControlClient> {
    const t = await transport.dial(addr, 5_000);
    const c = new ControlClient(t, plan, samples);
    c.handshake = security?.begin() ?? null;
    const hello: Hello = {
      minVersion: PROTOCOL_MIN_VERSION,
      maxVersion: PROTOCOL_MAX_VERSION,
      name: plan.name,
      nickname: plan.nickname,
      uid: plan.uid,
      features: [...(c.handshake?.features ?? [])],
      hasPassword: c.handshake !== null,
      publicKey: c.handshake?.publicKey ?? new Uint8Array(0),
      udpPort: 6783,
    };
    const valid = Buffer.from(encodeHello(hello));
    // Hello first: registering the handler may deliver the remote hello at once, and our confirmation must not
    // overtake our hello (gossip/connection.ts does the same).
    t.send(plan.mutate ? plan.mutate(valid, hello) : valid);
    t.onMessage((m) => c.receive(m));
    t.onClose((reason) => c.finish(reason));
    return c;
  }

  /** Resolves when ready (true) or closed (false), or false after `timeoutMs`. */
  whenSettled(timeoutMs: number): Promise<boolean> {
    if (this.phase === 'ready') return Promise.resolve(true);
    if (this.phase === 'closed') return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
  }

  /** Resolves when closed (true), or false after `timeoutMs`. */
  whenClosed(timeoutMs: number): Promise<boolean> {
    if (this.phase === 'closed') return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Send one frame (sealed when the connection has a session). */
  sendFrame(frame: Uint8Array): void {
    this.t.send(this.session ? this.session.seal(frame) : frame);
  }

  /** Send bytes as they are (before the handshake, or a forgery after it). */
  sendRaw(bytes: Uint8Array): void {
    this.t.send(bytes);
  }

  close(reason: string): void {
    this.t.close(reason);
    this.finish(reason);
  }

  private receive(m: Uint8Array): void {
    if (this.phase === 'closed') return;
    try {
      if (this.phase === 'hello') {
        const remote = decodeHello(m);
        this.remote = remote;
        if (!this.handshake) return this.ready();
        const session = this.handshake.derive({
          isInitiator: true,
          localName: this.plan.name,
          remoteName: remote.name,
          remotePublicKey: remote.publicKey,
          protocolVersion: Math.min(PROTOCOL_MAX_VERSION, remote.maxVersion),
          remoteFeatures: remote.features,
        });
        this.handshake = null;
        this.session = session;
        this.phase = 'confirming';
        const confirmation = Buffer.from(session.confirmation);
        this.t.send(this.plan.mutateConfirmation ? this.plan.mutateConfirmation(confirmation) : confirmation);
        return;
      }
      if (this.phase === 'confirming') {
        if (!this.session!.verifyConfirmation(m)) return this.close('fuzzer: remote confirmation did not verify');
        return this.ready();
      }
      const frame = this.session ? this.session.open(m) : m;
      if (frame === null || frame.length < 2) return;
      if (frame[0] === Frame.Gossip) {
        const len = frame[1]!;
        const channel = Buffer.from(frame.subarray(2, 2 + len)).toString('latin1');
        const list = this.samples.get(channel) ?? [];
        if (list.length < 16) {
          list.push(Buffer.from(frame.subarray(2 + len)));
          this.samples.set(channel, list);
        }
      }
    } catch {
      // A hello or frame we cannot read: the remote's business; we only watch for the close.
    }
  }

  private ready(): void {
    this.phase = 'ready';
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private finish(reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.closeReason = reason;
    this.handshake?.destroy();
    this.session?.destroy();
    for (const w of this.closeWaiters.splice(0)) w();
    this.readyWaiters = [];
  }
}
