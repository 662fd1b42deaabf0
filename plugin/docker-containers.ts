/**
 * Containers attached by name (`weft attach [ADDR...] CONTAINER`), as Weave users attach containers started on
 * Docker's own networks. A container is found through the engine (a name, an id, or a unique id prefix), plugged in
 * through its init process's network namespace (/proc/PID/ns/net), and remembered (Store `docker-attached`) with the
 * addresses it got, under its full id as IPAM identity.
 *
 * Engine events keep it so: a remembered container that starts again (docker restart, dockerd restart with
 * --restart) is attached again with the same addresses; one that is destroyed gives its addresses back and is
 * forgotten. The event stream is re-opened when it breaks (dockerd restarting), and on every (re)open the
 * remembered containers are checked once, so an event missed meanwhile is not lost.
 */
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import { DockerApiError, type DockerApi } from './docker-api.js';
import { WeftError } from '../runtime/errors.js';

/** What attaching needs from the daemon (it owns the data path and IPAM). */
export interface ContainerAttachDeps {
  /** The engine: DockerApi, or a fake in tests. */
  docker: Pick<DockerApi, 'inspectContainer' | 'events'>;
  store: Store;
  log: Logger;
  /** Resolve `requested` (CIDRs or IPAM requests) for `ident` and plug `target` in with them; answers the CIDRs. */
  attach(target: string, ident: string, requested: string[]): Promise<string[]>;
  /** Unplug `target` (no error if it is gone). */
  detach(target: string): Promise<void>;
  /** Give back every address `ident` holds. */
  release(ident: string): void;
  /** Told after a container is attached (again) or detached/removed: the weftDNS hook for containers by name. */
  onChange?(kind: 'joined' | 'left', container: AttachedContainer): void;
}

export interface AttachedContainer {
  id: string;
  name: string;
  /** The CIDRs it was given (asked again, verbatim, when it restarts). */
  addresses: string[];
  /** The namespace file of its current run, e.g. /proc/1234/ns/net. */
  target: string;
}

/** The container is not there, or not running. */
export class ContainerNotFoundError extends WeftError {
  readonly code = 'ERR_CONTAINER_NOT_FOUND';
  override readonly status = 404;
  constructor(nameOrId: string, why: string) {
    super(`container ${JSON.stringify(nameOrId)}: ${why}`);
  }
}

/** Attaching by name needs an engine. */
export class DockerOffError extends WeftError {
  readonly code = 'ERR_DOCKER_OFF';
  override readonly status = 409;
  constructor(nameOrId: string) {
    super(
      `cannot find container ${JSON.stringify(nameOrId)}: Docker integration is off (--docker-api ''); relaunch with --docker-api URL, or attach with --netns/--pid`,
    );
  }
}

const STORE_KEY = 'docker-attached';

export class DockerContainers {
  private readonly attached = new Map<string, AttachedContainer>();
  private isStopped = false;
  private abortEvents: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Serialises event handling and commands per container id. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ContainerAttachDeps) {
    const doc = deps.store.read(STORE_KEY);
    if (doc !== undefined) {
      try {
        for (const c of (JSON.parse(doc.toString('utf8')) as { containers: AttachedContainer[] }).containers) {
          if (typeof c?.id === 'string' && Array.isArray(c.addresses))
            this.attached.set(c.id, { id: c.id, name: String(c.name), addresses: c.addresses.map(String), target: String(c.target) });
        }
      } catch (err) {
        deps.log.warn({ err }, 'docker: stored attached-container list unreadable; starting with none');
      }
    }
  }

  /** Follow the engine's events (re-opened when they break). */
  start(): void {
    this.openEvents(0);
  }

  stop(): void {
    this.isStopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.abortEvents?.();
  }

  list(): AttachedContainer[] {
    return [...this.attached.values()];
  }

  /** `weft attach [ADDR...] CONTAINER`: answers the container and its CIDRs. */
  attach(nameOrId: string, requested: string[]): Promise<AttachedContainer> {
    return this.serial(async () => {
      const c = await this.running(nameOrId);
      const target = `/proc/${c.pid}/ns/net`;
      const addresses = await this.deps.attach(target, c.id, requested);
      const prev = this.attached.get(c.id);
      const merged = [...new Set([...(prev?.addresses ?? []), ...addresses])];
      const record = { id: c.id, name: c.name, addresses: merged, target };
      this.attached.set(c.id, record);
      this.persist();
      this.deps.log.info({ container: c.id.slice(0, 12), name: c.name, addr: merged }, 'docker: container attached');
      this.deps.onChange?.('joined', record);
      return record;
    });
  }

  /** `weft detach CONTAINER`: unplug it, give its addresses back, forget it. */
  detach(nameOrId: string): Promise<void> {
    return this.serial(async () => {
      let id: string;
      let target: string | undefined;
      try {
        const c = await this.deps.docker.inspectContainer(nameOrId);
        id = c.Id;
        if (c.State?.Running && c.State.Pid) target = `/proc/${c.State.Pid}/ns/net`;
      } catch (err) {
        // A container removed meanwhile can still be detached by the name or id weft remembers.
        const known = [...this.attached.values()].find((a) => a.name === nameOrId || a.id.startsWith(nameOrId));
        if (known === undefined) throw this.notFound(nameOrId, err);
        id = known.id;
      }
      if (target !== undefined) await this.deps.detach(target);
      this.deps.release(id);
      const known = this.attached.get(id);
      this.attached.delete(id);
      this.persist();
      if (known) this.deps.onChange?.('left', known);
    });
  }

  /** The container a namespace file belongs to, for `weft ps`. */
  byTarget(target: string): AttachedContainer | undefined {
    for (const c of this.attached.values()) if (c.target === target) return c;
    return undefined;
  }

  private async running(nameOrId: string): Promise<{ id: string; name: string; pid: number }> {
    let c;
    try {
      c = await this.deps.docker.inspectContainer(nameOrId);
    } catch (err) {
      throw this.notFound(nameOrId, err);
    }
    if (!c.State?.Running || !c.State.Pid)
      throw new ContainerNotFoundError(nameOrId, 'is not running; start it first (docker start), then attach');
    return { id: c.Id, name: c.Name.replace(/^\//, ''), pid: c.State.Pid };
  }

  private notFound(nameOrId: string, err: unknown): Error {
    if (err instanceof DockerApiError && err.engineStatus === 404)
      return new ContainerNotFoundError(nameOrId, 'no such container on this host (docker ps -a lists them)');
    return err as Error;
  }

  private openEvents(delayMs: number): void {
    if (this.isStopped) return;
    this.retryTimer = setTimeout(() => {
      if (this.isStopped) return;
      const stream = this.deps.docker.events({ type: ['container'], event: ['start', 'destroy'] }, (e) => {
        void this.serial(() => this.onEvent(e.Action, e.id)).catch((err: Error) =>
          this.deps.log.warn({ err: err.message, container: e.id.slice(0, 12) }, 'docker: could not follow a container event'),
        );
      });
      this.abortEvents = stream.abort;
      void this.serial(() => this.resync()).catch(() => undefined);
      stream.ended.then(
        () => this.openEvents(1000),
        () => this.openEvents(Math.min(Math.max(1000, delayMs * 2), 10_000)),
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  private async onEvent(action: string, id: string): Promise<void> {
    const known = this.attached.get(id);
    if (known === undefined) return;
    if (action === 'destroy') {
      this.deps.release(id);
      this.attached.delete(id);
      this.persist();
      this.deps.log.info({ container: id.slice(0, 12), name: known.name }, 'docker: attached container removed; addresses given back');
      this.deps.onChange?.('left', known);
    } else if (action === 'start') {
      await this.reattach(known);
    }
  }

  /** Check every remembered container once: gone ones give their addresses back, restarted ones are re-attached. */
  private async resync(): Promise<void> {
    for (const c of [...this.attached.values()]) {
      try {
        const now = await this.deps.docker.inspectContainer(c.id);
        if (now.State?.Running && now.State.Pid && `/proc/${now.State.Pid}/ns/net` !== c.target) await this.reattach(c);
      } catch (err) {
        if (err instanceof DockerApiError && err.engineStatus === 404) await this.onEvent('destroy', c.id);
        else return; // engine unreachable: try again when the stream reopens
      }
    }
  }

  private async reattach(c: AttachedContainer): Promise<void> {
    const now = await this.running(c.id);
    const target = `/proc/${now.pid}/ns/net`;
    await this.deps.attach(target, c.id, c.addresses);
    c.target = target;
    c.name = now.name;
    this.persist();
    this.deps.log.info({ container: c.id.slice(0, 12), name: c.name, addr: c.addresses }, 'docker: container started again; re-attached');
    this.deps.onChange?.('joined', c);
  }

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private persist(): void {
    this.deps.store.write(STORE_KEY, JSON.stringify({ containers: [...this.attached.values()] }));
  }
}
