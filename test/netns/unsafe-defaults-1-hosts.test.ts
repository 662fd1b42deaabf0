/**
 * Unsafe set-ups said out loud by a real daemon on one test host: an identity key others can read is refused at
 * launch (naming the file and the chmod), a weak password and a password file others can read are warned about in
 * the log, and the daemon still runs with them.
 */
import { describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSkipReason } from '../harness/hosts.js';
import { weftNetwork } from '../harness/network.js';
import { builtSkipReason, weftOn } from '../harness/weft.js';

const skip = netnsSkipReason() ?? builtSkipReason();

describe.skipIf(skip)('unsafe set-ups on a real daemon', () => {
  const net = weftNetwork(1, { routersOn: [] });

  it('refuses to launch with an identity key file group or others can read, naming the file and chmod 600', async () => {
    const dir = join(net.runDir, 'loose-identity');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const w = net.track(weftOn(net.hosts.host(1), dir, { WEFT_PASSWORD: 'a long enough random password', WEFT_NO_DATAPATH: '1' }));
    const identity = join(w.stateDir, 'identity');
    expect((await w.run(['identity'])).trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    chmodSync(identity, 0o644);
    const err = await w.launch().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain(`the identity file ${identity} can be read by other users (mode 0644)`);
    expect(err?.message).toContain(`chmod 600 ${identity}`);
    expect(w.pid()).toBeUndefined();
    chmodSync(identity, 0o600);
    await w.launch();
    expect((await w.report()).router.encryption).toBe(true);
    await w.run(['stop']);
  });

  it('warns about a weak password and a password file others can read, and runs', async () => {
    const dir = join(net.runDir, 'weak');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, 'hunter2\n', { mode: 0o644 });
    chmodSync(passwordFile, 0o644);
    const w = net.track(weftOn(net.hosts.host(1), dir, { WEFT_PASSWORD_FILE: passwordFile, WEFT_NO_DATAPATH: '1' }));
    await w.launch();
    const log = readFileSync(join(w.stateDir, 'weft.log'), 'utf8');
    expect(log).toContain('the password from WEFT_PASSWORD_FILE is weak (7 characters; use at least 12)');
    expect(log).toContain(
      `the password file ${passwordFile} can be read by other users (mode 0644); restrict it: chmod 600 ${passwordFile}`,
    );
    expect(log).not.toContain('hunter2');
    expect(await w.run(['status'])).toMatch(/Encryption: enabled/);
    await w.run(['stop']);
  });
});
