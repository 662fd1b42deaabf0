/**
 * A stand-in `ConnectionSecurity` for gossip tests and simulations (no sodium, no real secrecy): the "session key"
 * is the password, confirmation is the password's bytes, sealing prefixes a checksum of the password and a counter.
 * It behaves like the real one where the mesh can tell: same password → confirmation verifies and sealed messages
 * open in order; different passwords → confirmation fails; tampered, replayed or reordered messages → open() null.
 */
import type { ConnectionSecurity, DeriveParams, SecureSession, SecurityHandshake } from '../crypto/connection-security.js';
import type { DataSession } from '../crypto/data-session.js';

export class FakeConnectionSecurity implements ConnectionSecurity {
  readonly hasPassword: boolean;
  /** Sessions derived so far (tests inspect rekey traffic). */
  readonly sessions: FakeSecureSession[] = [];

  constructor(private readonly password: string | null) {
    this.hasPassword = password !== null;
  }

  begin(): SecurityHandshake {
    const publicKey = new Uint8Array(32).fill(9);
    return {
      publicKey,
      features: [],
      derive: (params: DeriveParams) => {
        if (params.remotePublicKey.length !== 32) throw Object.assign(new Error('bad public key'), { code: 'ERR_BAD_KEY' });
        const s = new FakeSecureSession(this.password ?? '', params.isInitiator);
        this.sessions.push(s);
        return s;
      },
      destroy: () => {},
    };
  }
}

export class FakeSecureSession implements SecureSession {
  private readonly ownConfirmation: Uint8Array;
  private isVerified = false;
  readonly dataCipherName = 'fake';
  readonly rekeyReceived: Uint8Array[] = [];
  rekeySend: ((m: Uint8Array) => void) | null = null;
  isDestroyed = false;
  private sendSeq = 0;
  private recvSeq = 0;
  private readonly tag: number;

  constructor(
    password: string,
    private readonly isInitiator = true,
  ) {
    this.ownConfirmation = new TextEncoder().encode(`confirm:${password}`);
    this.tag = [...password].reduce((h, c) => (h * 31 + c.charCodeAt(0)) & 0xff, 7);
  }

  /** Like the real one: the responder's exists only after the initiator's verified. */
  get confirmation(): Uint8Array {
    if (!this.isInitiator && !this.isVerified) throw new Error("the responder's confirmation was read before the initiator's verified");
    return this.ownConfirmation;
  }

  verifyConfirmation(remote: Uint8Array): boolean {
    this.isVerified = Buffer.from(remote).equals(Buffer.from(this.ownConfirmation));
    return this.isVerified;
  }

  seal(message: Uint8Array): Uint8Array {
    const b = new Uint8Array(message.length + 5);
    b[0] = this.tag;
    new DataView(b.buffer).setUint32(1, this.sendSeq++);
    b.set(message, 5);
    return b;
  }

  open(sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < 5 || sealed[0] !== this.tag) return null;
    if (new DataView(sealed.buffer, sealed.byteOffset).getUint32(1) !== this.recvSeq) return null;
    this.recvSeq++;
    return sealed.slice(5);
  }

  readonly data = {} as DataSession;

  startRekeying(send: (message: Uint8Array) => void): void {
    this.rekeySend = send;
  }

  onRekeyMessage(message: Uint8Array): void {
    this.rekeyReceived.push(Uint8Array.from(message));
  }

  stats(): { ageSeconds: number; rekeyCount: number } {
    return { ageSeconds: 0, rekeyCount: this.rekeyReceived.length };
  }

  destroy(): void {
    this.isDestroyed = true;
  }
}
