/**
 * The API's container-runtime additions (used by the CNI plugin), through a real server on loopback and the real
 * client: attach with a container id and DNS name, detach by container id and interface.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createApiServer, type ApiServer } from './server.js';
import { FakeControl } from './fake-control.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { ApiRequestError, createApiClient } from '../cli/client.js';

describe('API for container runtimes', () => {
  let server: ApiServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(control: FakeControl) {
    server = await createApiServer(control, createMemoryLogger().log, '127.0.0.1:0');
    const port = Number(server.httpAddr.split(':')[1]);
    return createApiClient({ httpHost: '127.0.0.1', httpPort: port, httpAddr: server.httpAddr });
  }

  it('passes containerId, ifname and a lower-cased dnsName through to the daemon', async () => {
    const control = new FakeControl();
    const client = await start(control);
    await client.attach({ target: '/run/netns/c1', addresses: ['net:default'], ifname: 'eth0', containerId: 'abc', dnsName: 'Web-0' });
    expect(control.calls.at(-1)).toEqual({
      method: 'attach',
      args: [{ target: '/run/netns/c1', addresses: ['net:default'], ifname: 'eth0', containerId: 'abc', dnsName: 'web-0' }],
    });
  });

  it('refuses a dnsName that is not a DNS name with 400, without calling the daemon', async () => {
    const control = new FakeControl();
    const client = await start(control);
    for (const dnsName of ['busy_hamilton', 'a..b', '-x', 'x'.repeat(254)]) {
      const err = await client.attach({ target: 'c1', addresses: [], dnsName }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiRequestError);
      expect((err as ApiRequestError).status).toBe(400);
      expect((err as ApiRequestError).message).toContain('dnsName');
    }
    expect(control.calls.some((c) => c.method === 'attach')).toBe(false);
  });

  it('POST /detach {containerId, ifname} detaches by container and answers whether something was removed', async () => {
    const control = new FakeControl();
    const client = await start(control);
    expect(await client.detachContainer('abc', 'eth0')).toBe(true);
    expect(control.calls.at(-1)).toEqual({ method: 'detachContainer', args: ['abc', 'eth0'] });
    const err = await client.detachContainer('abc', '').catch((e: unknown) => e);
    expect((err as ApiRequestError).status).toBe(400);
    expect((err as ApiRequestError).message).toContain('ifname');
  });
});
