/**
 * Membership needs the password: three routers with password A form a mesh; a fourth router with password B, and
 * then one with no password, dials all three and is refused by each, never appears in anyone's topology, and every
 * refusing router says why in its log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, netnsSkipReason, type TestHosts } from '../harness/hosts.js';
import { builtSkipReason, waitFor, weftOn, type WeftHost } from '../harness/weft.js';

const skip = netnsSkipReason() ?? builtSkipReason();

/** Lines of `<stateDir>/weft.log` that name `remoteIp` (or its nickname) and match `what`. */
function refusalLines(w: WeftHost, remoteIp: string, remoteNick: string, what: RegExp): string[] {
  const path = join(w.stateDir, 'weft.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => (l.includes(remoteIp) || l.includes(`${remoteNick} (`)) && what.test(l));
}

describe.skipIf(skip)('password refusals on 4 hosts', () => {
  let hosts: TestHosts;
  let runDir: string;
  let members: WeftHost[] = [];
  const outsiders: WeftHost[] = [];

  beforeAll(async () => {
    hosts = await createHosts({ count: 4 });
    runDir = mkdtempSync(join(tmpdir(), `${hosts.prefix}-`));
    members = [1, 2, 3].map((i) => weftOn(hosts.host(i), runDir, { WEFT_PASSWORD: 'password-A-0123456789' }));
    await members[0]!.launch();
    await members[1]!.launch([hosts.host(1).ip]);
    await members[2]!.launch([hosts.host(1).ip]);
    for (const w of members) {
      await waitFor(
        `h${w.host.index} to have 2 established connections`,
        async () => {
          const r = await w.report();
          return r.router.connections.filter((x) => x.state === 'established').length === 2;
        },
        30_000,
      );
    }
  });

  afterAll(async () => {
    for (const w of [...outsiders, ...members]) await w.cleanup().catch(() => undefined);
    await hosts?.destroy();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  /** Launch an outsider on host 4 (own state dir) dialling all three members; resolves it and its peer name. */
  async function launchOutsider(env: Record<string, string>, dir: string): Promise<{ w: WeftHost; name: string }> {
    const w = weftOn(hosts.host(4), mkdtempSync(join(runDir, `${dir}-`)), env);
    outsiders.push(w);
    await w.launch([1, 2, 3].map((i) => hosts.host(i).ip));
    return { w, name: (await w.report()).router.name };
  }

  /** The outsider has no established connection, no member lists it, the mesh is intact, each member logged `why`. */
  async function expectRefusedByAll(outsider: { w: WeftHost; name: string }, why: RegExp): Promise<void> {
    const h4 = hosts.host(4);
    for (const m of members) {
      const lines = await waitFor(
        `h${m.host.index} to log refusing h4`,
        () => {
          const l = refusalLines(m, h4.ip, 'h4', why);
          return l.length > 0 ? l : undefined;
        },
        30_000,
      );
      console.log(`h${m.host.index}: ${lines![0]!.slice(0, 300)}`);
    }
    const r4 = await outsider.w.report();
    expect(r4.router.connections.filter((x) => x.state === 'established')).toEqual([]);
    expect(r4.router.peers.map((p) => p.name).filter((n) => n !== outsider.name)).toEqual([]);
    for (const m of members) {
      const r = await m.report();
      expect(
        r.router.peers.map((p) => p.name),
        `h${m.host.index}'s peers`,
      ).not.toContain(outsider.name);
      expect(
        r.router.connections
          .filter((x) => x.state === 'established')
          .map((x) => x.nickname)
          .sort(),
      ).toEqual(['h1', 'h2', 'h3'].filter((n) => n !== `h${m.host.index}`));
    }
  }

  it('refuses a router with a different password on every member, and logs a password mismatch', async () => {
    const outsider = await launchOutsider({ WEFT_PASSWORD: 'password-B-9876543210' }, 'wrongpw');
    await expectRefusedByAll(outsider, /password/i);
    const own = readFileSync(join(outsider.w.stateDir, 'weft.log'), 'utf8');
    expect(own).toMatch(/password mismatch/i);
    await outsider.w.cleanup();
  });

  it('refuses a router without a password on every member, and logs that one side has none', async () => {
    const outsider = await launchOutsider({}, 'nopw');
    await expectRefusedByAll(outsider, /no password|has none/i);
    const own = readFileSync(join(outsider.w.stateDir, 'weft.log'), 'utf8');
    expect(own).toMatch(/has a password but this router has none|no password/i);
  });
});
