import { describe, expect, it } from 'vitest';
import { silentLogger } from '../runtime/logger.js';
import { MemoryStore } from '../runtime/store.js';
import { DockerApiError, type DockerContainer, type DockerEvent } from './docker-api.js';
import { DockerContainers } from './docker-containers.js';

/** An engine with containers in memory and an event stream the test pushes into. */
class FakeEngine {
  readonly containers = new Map<string, DockerContainer>();
  private listener: ((e: DockerEvent) => void) | undefined;
  async inspectContainer(nameOrId: string): Promise<DockerContainer> {
    for (const c of this.containers.values()) if (c.Id.startsWith(nameOrId) || c.Name === `/${nameOrId}`) return c;
    throw new DockerApiError(`no such container: ${nameOrId}`, 404);
  }
  events(_filters: Record<string, string[]>, onEvent: (e: DockerEvent) => void) {
    this.listener = onEvent;
    return { abort: () => (this.listener = undefined), ended: new Promise<void>(() => undefined) };
  }
  emit(Action: string, id: string): void {
    this.listener?.({ Action, id });
  }
}

const ID = 'c0ffee'.padEnd(64, '1');

function setup() {
  const engine = new FakeEngine();
  engine.containers.set(ID, { Id: ID, Name: '/web', State: { Running: true, Pid: 100 } });
  const attached: Array<[string, string, string[]]> = [];
  const released: string[] = [];
  const changes: Array<[string, string]> = [];
  const store = new MemoryStore();
  const make = () =>
    new DockerContainers({
      docker: engine,
      store,
      log: silentLogger,
      attach: async (target, ident, requested) => {
        attached.push([target, ident, requested]);
        return requested.map((r) => (r === 'net:default' ? '10.32.0.5/16' : r));
      },
      detach: async () => undefined,
      release: (ident) => released.push(ident),
      onChange: (kind, c) => changes.push([kind, c.name]),
    });
  return { engine, attached, released, changes, store, make };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('containers attached by name', () => {
  it('attaches by name or id prefix through the container pid, under its full id', async () => {
    const { make, attached } = setup();
    const containers = make();
    const c = await containers.attach('web', ['net:default']);
    expect(c).toMatchObject({ id: ID, name: 'web', addresses: ['10.32.0.5/16'], target: '/proc/100/ns/net' });
    await containers.attach('c0ffee11', ['ip:10.32.0.9']);
    expect(attached.map(([t, i]) => [t, i])).toEqual([
      ['/proc/100/ns/net', ID],
      ['/proc/100/ns/net', ID],
    ]);
    expect(containers.byTarget('/proc/100/ns/net')?.addresses).toEqual(['10.32.0.5/16', 'ip:10.32.0.9']);
  });

  it('refuses a missing or stopped container with what to do', async () => {
    const { make, engine } = setup();
    const containers = make();
    await expect(containers.attach('nope', [])).rejects.toThrow(/no such container on this host/);
    engine.containers.get(ID)!.State = { Running: false, Pid: 0 };
    await expect(containers.attach('web', [])).rejects.toThrow(/is not running; start it first/);
  });

  it('re-attaches a restarted container with the same addresses, and releases a destroyed one', async () => {
    const { make, engine, attached, released, changes } = setup();
    const containers = make();
    containers.start();
    await containers.attach('web', ['net:default']);
    engine.containers.get(ID)!.State = { Running: true, Pid: 200 };
    engine.emit('start', ID);
    await settle();
    expect(attached.at(-1)).toEqual(['/proc/200/ns/net', ID, ['10.32.0.5/16']]);
    engine.emit('destroy', ID);
    await settle();
    expect(released).toEqual([ID]);
    expect(containers.list()).toEqual([]);
    // The weftDNS hook hears all three.
    expect(changes).toEqual([
      ['joined', 'web'],
      ['joined', 'web'],
      ['left', 'web'],
    ]);
    containers.stop();
  });

  it('remembers attached containers across a weft restart and catches up on what it missed', async () => {
    const { make, engine, attached, released } = setup();
    const first = make();
    await first.attach('web', ['net:default']);
    first.stop();
    // While weft was down the container restarted (new pid) and another one it knew was removed.
    engine.containers.get(ID)!.State = { Running: true, Pid: 300 };
    const second = make();
    expect(second.list().map((c) => c.name)).toEqual(['web']);
    second.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(attached.at(-1)).toEqual(['/proc/300/ns/net', ID, ['10.32.0.5/16']]);
    engine.containers.delete(ID);
    second.stop();
    const third = make();
    third.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(released).toEqual([ID]);
    expect(third.list()).toEqual([]);
    third.stop();
  });
});
