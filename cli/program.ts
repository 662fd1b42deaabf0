/**
 * The `weft` command: a commander program over the daemon's HTTP API. Output streams, the exit function, the API
 * client, the daemon spawner and the clock are parameters (`CliIo`), so every command, including misuse, is tested
 * without a terminal, a port or a process.
 *
 * Exit codes: 0 success; 1 the daemon is not running, refused, or failed; 2 misuse (unknown command or flag, bad
 * address), after printing the usage line and what to type instead.
 */
import { join } from 'node:path';
import { Argument, Command, CommanderError, Option } from 'commander';
import type { AttachRequest, Report } from '../api/control.js';
import { weftVersion } from '../api/version.js';
import {
  ConfigError,
  isCidr,
  defaultOf,
  launchOptions,
  type LaunchOption,
  parsePeerAddress,
  resolveClientConfig,
  resolveConfig,
  type ClientConfig,
  type WeftConfig,
} from '../config/launch.js';
import { isIpAddress } from '../runtime/address.js';
import { ApiRequestError, ApiUnreachableError, createApiClient, DaemonNotRunningError, type ApiClient } from './client.js';
import {
  ensureStateDir,
  isProcessAlive,
  logSize,
  logTail,
  movePasswordOutOfArgs,
  processSpawner,
  readPidFile,
  removePidFile,
  stateFiles,
  waitForDaemon,
  writePidFile,
  type DaemonSpawner,
} from './launch.js';
import { formatConnections, formatEndpoints, formatIpam, formatPeers, formatStatus, formatTargets } from './status-format.js';
import { formatDns } from './dns-format.js';
import { escapeControls, escapeOutput, escapeStrings, terminalJson } from './terminal-text.js';
import { formatReport, ReportFormatError } from './report-format.js';
import { defaultSystemdSetup, envTemplate, setupSystemd } from './systemd.js';
import { stateDirWarning } from '../runtime/file-modes.js';
import { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, SetupCniError, setupCni } from '../cni/setup.js';
import { WeftError } from '../runtime/errors.js';

/** Everything the CLI touches outside itself. Only `stdout`, `stderr`, `exit` and `env` are required. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Called once with the exit code when the command is done. */
  exit(code: number): void;
  env: NodeJS.ProcessEnv;
  /** @default an HTTP client to the config's API address */
  createClient?(config: ClientConfig): ApiClient;
  /** @default spawn `node dist/daemon/main.js` */
  spawner?: DaemonSpawner;
  /** @default setTimeout */
  sleep?(ms: number): Promise<void>;
  /** @default Date.now */
  now?(): number;
  /** Run the daemon in this process (`weft launch --foreground`). @default daemon/main.js's runDaemon */
  runForeground?(config: WeftConfig): Promise<void>;
  /** How long `launch` waits for the daemon to answer, and `stop` for it to exit. @default 20_000 */
  waitMs?: number;
}

/** Misuse the user can fix by typing something else; printed with the command's usage line. Exit 2. */
export class UsageError extends WeftError {
  readonly code = 'ERR_USAGE';
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

/** A failure already explained in its message; exit 1. */
class CommandFailedError extends WeftError {
  readonly code = 'ERR_COMMAND_FAILED';
  override readonly status = 500;
}

const statusViews = ['peers', 'connections', 'targets', 'ipam', 'dns'] as const;
type StatusView = (typeof statusViews)[number];

/**
 * Run `weft ARGV` (arguments after the program name) to completion: writes to `io.stdout`/`io.stderr`, then calls
 * `io.exit(code)` and returns the same code. Never throws.
 */
export async function runCli(argv: readonly string[], rawIo: CliIo): Promise<number> {
  // Error messages can carry other routers' strings (a nickname in a refusal, a log line): the last check before
  // the terminal, for stdout and stderr alike.
  const io: CliIo = {
    ...rawIo,
    stdout: { write: (text: string) => rawIo.stdout.write(escapeOutput(text)) },
    stderr: { write: (text: string) => rawIo.stderr.write(escapeOutput(text)) },
  };
  const program = buildProgram(io, argv);
  let code = 0;
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    code = report(err, io, program);
  }
  io.exit(code);
  return code;
}

function report(err: unknown, io: CliIo, program: Command): number {
  if (err instanceof CommanderError) {
    // commander has printed its message (and our usage hint) already.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
    return 2;
  }
  if (err instanceof UsageError) {
    const cmd = program.commands.find((c) => c.name() === err.command);
    io.stderr.write(`weft ${err.command}: ${err.message}\n${usageHint(cmd ?? program)}\n`);
    return 2;
  }
  if (err instanceof ConfigError) {
    io.stderr.write(`weft: ${err.hint}\n`);
    return 2;
  }
  if (err instanceof DaemonNotRunningError) {
    io.stderr.write(`${err.message}\n`);
    return 1;
  }
  if (err instanceof ApiRequestError) {
    // One line from the daemon, which may quote other routers' strings: a newline in it is theirs, not ours.
    io.stderr.write(`weft: ${escapeControls(err.message)}\n`);
    return 1;
  }
  if (err instanceof ApiUnreachableError || err instanceof CommandFailedError) {
    io.stderr.write(`weft: ${err.message}\n`);
    return 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`weft: ${message}\n`);
  return 1;
}

function usageHint(cmd: Command): string {
  const path = cmd.parent ? `weft ${cmd.name()}` : 'weft';
  return `Usage: ${path} ${cmd.usage()}\nRun '${path} --help' for details.`;
}

/**
 * Build the commander program. `argv` is the full argument list, needed by `launch`, which hands its own arguments
 * verbatim to `resolveConfig` and to the daemon.
 */
export function buildProgram(io: CliIo, argv: readonly string[] = []): Command {
  const sleep = io.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = io.now ?? Date.now;
  const waitMs = io.waitMs ?? 20_000;
  const clientConfig = (): ClientConfig => resolveClientConfig(io.env);
  const client = (config = clientConfig()): ApiClient => (io.createClient ?? ((c: ClientConfig) => createApiClient(c)))(config);
  const out = (text: string) => io.stdout.write(text);
  const json = (value: unknown) => out(`${terminalJson(value)}\n`);

  const program = new Command('weft')
    .description(`weft: an encrypted mesh network for containers. Talks to the weft daemon on WEFT_HTTP_ADDR (${defaultOf('http-addr')}).`)
    .version(`weft ${weftVersion()}`, '-V, --version', 'print the version')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, 'weft: ')),
    })
    .exitOverride()
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `\nEnvironment: WEFT_STATE_DIR (default ${defaultOf('state-dir')}) and WEFT_HTTP_ADDR (default ${defaultOf('http-addr')}) apply to every command.` +
        '\nThe API serves this command and local scripts only: requests from web pages (Origin, Sec-Fetch-Site) or naming another' +
        `\nHost are refused. Prometheus metrics: GET http://${defaultOf('metrics-addr')}/metrics (weft launch --metrics-addr).`,
    );

  // ---- launch ------------------------------------------------------------------------------------------------------
  const launch = program
    .command('launch')
    .summary('start the weft daemon (in the background unless --foreground)')
    .description(
      'Start the weft daemon and connect it to PEERs (host or host:port). Returns once its API answers.\n' +
        'Its log goes to <state-dir>/weft.log and its pid to <state-dir>/weft.pid.',
    )
    .argument('[PEER...]', 'peers to connect to')
    .usage('[options] [PEER...]');
  for (const [name, o] of Object.entries(launchOptions) as Array<[string, LaunchOption<unknown>]>) {
    const flag = o.value === undefined ? `--${name}` : `--${name} <${o.value}>`;
    const shownDefault = o.defaultText ?? (o.default === '' ? undefined : o.default);
    const extras = [o.env ? `env ${o.env}` : '', shownDefault ? `default ${shownDefault}` : ''].filter((s) => s.length > 0);
    launch.addOption(new Option(flag, extras.length > 0 ? `${o.description} (${extras.join(', ')})` : o.description));
  }
  launch.action(async () => {
    const launchArgs = argv.slice(argv.indexOf('launch') + 1);
    const config = resolveConfig(launchArgs, io.env);
    for (const w of config.warnings) io.stderr.write(`weft: warning: ${w}\n`);
    const api = client(config);
    const existing = await api.version(2_000).catch((err: unknown) => {
      if (err instanceof DaemonNotRunningError) return undefined;
      throw err;
    });
    if (existing) {
      throw new CommandFailedError(
        `weft is already running on ${config.httpAddr} (pid ${existing.pid}, version ${existing.version}); stop it first with: weft stop`,
      );
    }
    ensureStateDir(config.stateDir);
    const looseStateDir = stateDirWarning(config.stateDir);
    if (looseStateDir !== undefined) io.stderr.write(`weft: warning: ${looseStateDir}\n`);
    const { outPath, pidPath } = stateFiles(config.stateDir);
    const logPath = config.logFile ?? stateFiles(config.stateDir).logPath;

    if (config.isForeground) {
      writePidFile(pidPath, process.pid);
      try {
        await (io.runForeground ?? runDaemonInProcess)(config);
      } finally {
        removePidFile(pidPath, process.pid);
      }
      return;
    }

    const { args, password } = movePasswordOutOfArgs(launchArgs);
    if (config.logFile === undefined) args.unshift('--log-file', logPath);
    const env = password === undefined ? { ...io.env } : { ...io.env, WEFT_PASSWORD: password };
    const offset = logSize(logPath);
    const outOffset = logSize(outPath);
    const spawned = (io.spawner ?? processSpawner())(args, env, outPath);
    writePidFile(pidPath, spawned.pid);
    // A daemon whose log still grows is starting, only slowly (a loaded machine): it gets more time, within bounds.
    const waitStart = now();
    const outcome = await waitForDaemon(
      spawned,
      { client: api, sleep, now },
      { timeoutMs: waitMs, maxMs: 6 * waitMs, progress: () => logSize(logPath) + logSize(outPath) },
    );
    if (outcome.kind === 'ready') {
      out(`weft ${outcome.version.version} is running on ${config.httpAddr} (pid ${spawned.pid}, log ${logPath})\n`);
      return;
    }
    removePidFile(pidPath, spawned.pid);
    let why: string;
    if (outcome.kind === 'exited') {
      why = `the daemon exited (${outcome.signal ? `signal ${outcome.signal}` : `code ${outcome.code}`}) before its API answered on ${config.httpAddr}`;
    } else {
      spawned.kill();
      const waited = Math.round((now() - waitStart) / 1000);
      why = `the daemon did not answer on ${config.httpAddr} within ${waited} s; stopped it (pid ${spawned.pid})`;
    }
    const tail = [...logTail(logPath, offset), ...logTail(outPath, outOffset)];
    throw new CommandFailedError(
      tail.length > 0 ? `${why}. Its last words (${logPath}):\n  ${tail.join('\n  ')}` : `${why}; its log ${logPath} is empty`,
    );
  });

  // ---- stop --------------------------------------------------------------------------------------------------------
  program
    .command('stop')
    .description('stop the weft daemon and wait for it to exit')
    .action(async () => {
      const config = clientConfig();
      const api = client(config);
      const { pid } = await api.version();
      await api.stop();
      const deadline = now() + waitMs;
      while (isProcessAlive(pid)) {
        if (now() >= deadline)
          throw new CommandFailedError(
            `weft (pid ${pid}) did not exit within ${waitMs / 1000} s; look at its log, or kill it: kill ${pid}`,
          );
        await sleep(20);
      }
      const { pidPath } = stateFiles(config.stateDir);
      if (readPidFile(pidPath) === pid) removePidFile(pidPath, pid);
    });

  // ---- status ------------------------------------------------------------------------------------------------------
  program
    .command('status')
    .description('show the router, its connections, peers, targets or IPAM; --json for the data behind the text')
    .addArgument(new Argument('[view]', 'what to show').choices(statusViews))
    .option('--json', 'print JSON instead of text')
    .action(async (view: StatusView | undefined, opts: { json?: boolean }) => {
      const report: Report = await client().report();
      if (opts.json) {
        const views: Record<StatusView, unknown> = {
          peers: report.router.peers,
          connections: report.router.connections,
          targets: report.router.targets,
          ipam: report.ipam ?? null,
          dns: report.dns ?? null,
        };
        json(view === undefined ? report : views[view]);
        return;
      }
      // Nicknames, peer names and reasons come from other routers: escaped field by field, so a newline in one
      // cannot fake a line of the table either.
      const safe = escapeStrings(report);
      const formatters: Record<StatusView, (r: Report) => string> = {
        peers: formatPeers,
        connections: formatConnections,
        targets: formatTargets,
        ipam: formatIpam,
        dns: formatDns,
      };
      out((view === undefined ? formatStatus : formatters[view])(safe));
    });

  // ---- report ------------------------------------------------------------------------------------------------------
  program
    .command('report')
    .description('print the full daemon report as JSON, or the fields a template picks')
    .option('-f, --format <TEMPLATE>', "print TEMPLATE with each {{path.to.field}} replaced by its value, e.g. -f '{{router.peerName}}\\n'")
    .action(async (opts: { format?: string }) => {
      const report = await client().report();
      if (opts.format === undefined) {
        json(report);
        return;
      }
      try {
        out(formatReport(opts.format, escapeStrings(report)));
      } catch (err) {
        if (err instanceof ReportFormatError) throw new CommandFailedError(err.message);
        throw err;
      }
    });

  // ---- setup-systemd -----------------------------------------------------------------------------------------------
  program
    .command('setup-systemd')
    .description('install a systemd unit running `weft launch --foreground`, with its settings in an environment file')
    .option('--unit-dir <DIR>', 'where the unit goes', '/etc/systemd/system')
    .option('--env-file <FILE>', 'the WEFT_* settings the unit reads (written once, 0600; never overwritten)', '/etc/weft/weft.env')
    .action((opts: { unitDir: string; envFile: string }) => {
      const result = setupSystemd({ ...defaultSystemdSetup(), unitDir: opts.unitDir, envFile: opts.envFile }, envTemplate());
      out(`${result.unit === 'written' ? 'wrote' : 'unchanged'} ${result.unitPath}\n`);
      out(`${result.env === 'written' ? 'wrote' : 'kept existing'} ${result.envFile}\n`);
      out(`next: edit ${result.envFile}, then: systemctl daemon-reload && systemctl enable --now weft\n`);
    });

  // ---- version -----------------------------------------------------------------------------------------------------
  program
    .command('version')
    .description("print this command's version and, if it runs, the daemon's")
    .action(async () => {
      out(`weft ${weftVersion()}\n`);
      const config = clientConfig();
      const daemon = await client(config)
        .version()
        .catch((err: unknown) => {
          if (err instanceof DaemonNotRunningError) return undefined;
          throw err;
        });
      out(daemon ? `daemon ${daemon.version} (pid ${daemon.pid}) on ${config.httpAddr}\n` : `daemon not running on ${config.httpAddr}\n`);
    });

  // ---- identity ----------------------------------------------------------------------------------------------------
  program
    .command('identity')
    .description("print this router's identity public key (for other routers' --authorized-peers), making the key if needed")
    .option('--identity-file <FILE>', 'the private key file (default: WEFT_IDENTITY_FILE, else STATE_DIR/identity)')
    .action(async (opts: { identityFile?: string }) => {
      const file = opts.identityFile ?? (io.env['WEFT_IDENTITY_FILE'] || join(clientConfig().stateDir, 'identity'));
      if (file === '')
        throw new UsageError(
          '--identity-file is empty; give a file, e.g. weft identity --identity-file /var/lib/weft/identity',
          'identity',
        );
      try {
        // Loaded here only: every other command runs without sodium (test/import-graph.test.ts lists this lazy load).
        const { identityPublicKeyText } = await import('../crypto/identity.js');
        out(`${identityPublicKeyText(file)}\n`);
      } catch (err) {
        throw new CommandFailedError((err as Error).message);
      }
    });

  // ---- connect / forget --------------------------------------------------------------------------------------------
  program
    .command('connect')
    .description('connect to more peers (host or host:port); --replace drops the peers given before')
    .argument('[PEER...]', 'peers to connect to')
    .option('--replace', 'replace the current peer list instead of adding to it')
    .action(async (peers: string[], opts: { replace?: boolean }) => {
      if (peers.length === 0 && !opts.replace)
        throw new UsageError('give at least one PEER, e.g. weft connect 10.0.0.2 (or --replace with none to drop all)', 'connect');
      checkPeers(peers, 'connect');
      await client().connect(peers, opts.replace === true);
    });

  program
    .command('forget')
    .description('stop connecting to these peers (existing connections stay until they break)')
    .argument('<PEER...>', 'peers to forget, as given to launch or connect')
    .action(async (peers: string[]) => {
      checkPeers(peers, 'forget');
      await client().forget(peers);
    });

  // ---- attach / detach ---------------------------------------------------------------------------------------------
  program
    .command('attach')
    .description(
      'attach a network namespace or a Docker container to the weft network.\n' +
        'ADDR is an address in CIDR form (10.32.1.1/12), or net:default, net:CIDR, ip:ADDR to ask IPAM; with no ADDR, net:default.\n' +
        'CONTAINER is a Docker container name or id (prefix): it is re-attached with the same addresses when it restarts.',
    )
    .argument('[ADDR...]', 'addresses for the interface, then CONTAINER unless --netns or --pid is given')
    .usage('[options] [ADDR...] [CONTAINER]')
    .option('--netns <NAME|PATH>', 'the namespace: an `ip netns` name or a path like /proc/1234/ns/net')
    .option('--pid <PID>', 'the namespace of this process')
    .option('--mac <MAC>', 'keep this MAC address (when moving a container between hosts)')
    .option('--ifname <NAME>', 'interface name inside the namespace (default ethwe0)')
    .option('--name <NAME>', 'register NAME in weftDNS for the container (NAME.weft.local on every host)')
    .action(async (args: string[], opts: { netns?: string; pid?: string; mac?: string; ifname?: string; name?: string }) => {
      let addresses = args;
      let target: string;
      if (opts.netns === undefined && opts.pid === undefined && args.length > 0 && !looksLikeAddress(args[args.length - 1]!)) {
        target = containerTarget(args[args.length - 1]!, 'attach');
        addresses = args.slice(0, -1);
      } else {
        target = targetOf(opts, 'attach');
      }
      const request: AttachRequest = { target, addresses: addresses.length > 0 ? addresses : ['net:default'] };
      for (const a of request.addresses) checkAttachAddress(a);
      if (opts.mac !== undefined) {
        if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(opts.mac))
          throw new UsageError(`--mac ${JSON.stringify(opts.mac)} is not a MAC; write it like 02:42:0a:20:00:01`, 'attach');
        request.mac = opts.mac.toLowerCase();
      }
      if (opts.ifname !== undefined) {
        if (!/^[A-Za-z0-9_.-]{1,15}$/.test(opts.ifname))
          throw new UsageError(
            `--ifname ${JSON.stringify(opts.ifname)} is not an interface name: 1 to 15 letters, digits, '-', '_', '.'`,
            'attach',
          );
        request.ifname = opts.ifname;
      }
      if (opts.name !== undefined) {
        checkDnsName(opts.name, 'attach');
        request.name = opts.name;
      }
      const endpoint = await client().attach(request);
      out(`${endpoint.addresses.join(' ')}\n`);
    });

  program
    .command('detach')
    .description('detach a namespace attached with weft attach, or a Docker container (name or id); its addresses go back to IPAM')
    .argument('[CONTAINER]', 'a Docker container attached with weft attach')
    .option('--netns <NAME|PATH>', 'the namespace as given to attach')
    .option('--pid <PID>', 'the namespace of this process')
    .action(async (container: string | undefined, opts: { netns?: string; pid?: string }) => {
      if (container !== undefined && (opts.netns !== undefined || opts.pid !== undefined)) {
        throw new UsageError('give either CONTAINER or --netns/--pid, not both', 'detach');
      }
      await client().detach(container !== undefined ? containerTarget(container, 'detach') : targetOf(opts, 'detach'));
    });

  // ---- expose / hide -----------------------------------------------------------------------------------------------
  program
    .command('expose')
    .description('give the host an address on the weft network so it reaches containers: from IPAM when none is given')
    .argument('[ADDR...]', 'CIDR (10.32.0.1/12), net:default, net:CIDR or ip:ADDR; default net:default')
    .action(async (addresses: string[]) => {
      for (const a of addresses) checkAttachAddress(a, 'expose');
      for (const a of await client().expose(addresses)) out(`${a}\n`);
    });

  program
    .command('hide')
    .description('remove addresses given with weft expose (all of them when none is given)')
    .argument('[CIDR...]', 'host addresses to remove')
    .action(async (cidrs: string[]) => {
      checkCidrs(cidrs, 'hide');
      for (const a of await client().hide(cidrs)) out(`${a}\n`);
    });

  // ---- IPAM --------------------------------------------------------------------------------------------------------
  program
    .command('prime')
    .description('wait until IPAM is ready (the peers agreed how to divide the address range)')
    .option('--timeout <SECONDS>', 'give up after this long', '60')
    .action(async (opts: { timeout: string }) => {
      const seconds = Number(opts.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0)
        throw new UsageError(`--timeout ${JSON.stringify(opts.timeout)} is not a number of seconds, e.g. --timeout 60`, 'prime');
      await client().prime(seconds);
      out('IPAM is ready\n');
    });

  program
    .command('rmpeer')
    .description('take over the address space of a peer that is gone for good (run it on one router only)')
    .argument('<NAME>', 'peer name, as weft status ipam shows it')
    .action(async (name: string) => {
      const moved = await client().rmpeer(name);
      out(`${moved} addresses taken over from ${name}\n`);
    });

  program
    .command('reload')
    .description('re-read --authorized-peers: routers no longer listed are disconnected and refused (SIGHUP does the same)')
    .action(async () => {
      const { keys, closed } = await client().reload();
      out(`${keys} authorized peers; ${closed.length === 0 ? 'no connection closed' : `closed: ${escapeStrings(closed).join(', ')}`}\n`);
    });

  program
    .command('reset')
    .description("hand this router's addresses to a reachable peer, wipe its IPAM state and stop it")
    .action(async () => {
      await client().reset();
      out('IPAM state wiped; weft is stopping\n');
    });

  // ---- weftDNS -----------------------------------------------------------------------------------------------------
  program
    .command('dns-add')
    .description('register NAME (in the weftDNS domain unless it ends with a dot) for these addresses, owned by this router')
    .argument('<ARGS...>', 'ADDR... NAME')
    .usage('ADDR... NAME')
    .action(async (args: string[]) => {
      const { name, addresses } = addressesAndName(args, 'dns-add');
      if (addresses.length === 0) throw new UsageError('give at least one ADDR before NAME, e.g. weft dns-add 10.32.0.5 web', 'dns-add');
      out(`${await client().dnsAdd(name, addresses)}\n`);
    });

  program
    .command('dns-remove')
    .description("withdraw this router's records of NAME (only these addresses when given)")
    .argument('<ARGS...>', '[ADDR...] NAME')
    .usage('[ADDR...] NAME')
    .action(async (args: string[]) => {
      const { name, addresses } = addressesAndName(args, 'dns-remove');
      const removed = await client().dnsRemove(name, addresses);
      out(`${removed} record${removed === 1 ? '' : 's'} removed\n`);
    });

  program
    .command('dns-lookup')
    .description('print the addresses of NAME, one per line, as weftDNS answers them (exit status 1 when there are none)')
    .argument('<NAME>', 'a name, e.g. web or web.weft.local.')
    .action(async (name: string) => {
      checkDnsName(name, 'dns-lookup');
      const addresses = await client().dnsLookup(name);
      if (addresses.length === 0) throw new CommandFailedError(`no addresses for ${name}`);
      for (const a of addresses) out(`${a}\n`);
    });

  program
    .command('dns-args')
    .description('print the docker run flags that make a container resolve weftDNS names: $(weft dns-args)')
    .action(async () => {
      out(`${await client().dnsArgs()}\n`);
    });

  // ---- ps ----------------------------------------------------------------------------------------------------------
  program
    .command('ps')
    .description('list attached namespaces and containers: target (or container id and name), interface, MAC, addresses')
    .action(async () => {
      out(formatEndpoints(escapeStrings(await client().report())));
    });

  // ---- setup-cni ---------------------------------------------------------------------------------------------------
  program
    .command('setup-cni')
    .description(
      'install the weft CNI plugin and a 10-weft.conflist (network "weft", portmap chained when installed) for podman, containerd, Kubernetes',
    )
    .option('--bin-dir <DIR>', 'where runtimes look for CNI plugins', DEFAULT_BIN_DIR)
    .option('--conf-dir <DIR>', 'where runtimes look for network configurations', DEFAULT_CONF_DIR)
    .action((opts: { binDir: string; confDir: string }) => {
      if (opts.binDir === '' || opts.confDir === '')
        throw new UsageError('--bin-dir and --conf-dir need a directory, e.g. --bin-dir /opt/cni/bin', 'setup-cni');
      let outcome;
      try {
        outcome = setupCni({ binDir: opts.binDir, confDir: opts.confDir, httpAddr: clientConfig().httpAddr });
      } catch (err) {
        if (err instanceof SetupCniError) throw new CommandFailedError(err.message);
        throw err;
      }
      for (const f of outcome.written) out(`wrote ${f}\n`);
      for (const f of outcome.unchanged) out(`unchanged ${f}\n`);
      out(
        outcome.hasPortmap
          ? 'portmap is chained after weft\n'
          : `portmap is not in ${opts.binDir}: not chained (install it there and run setup-cni again for port mappings)\n`,
      );
    });

  // Every command answers misuse with its usage line and where to read more.
  for (const cmd of program.commands) cmd.showHelpAfterError(usageHint(cmd));
  program.showHelpAfterError(usageHint(program));
  return program;
}

/** `ADDR... NAME`: the last argument is the name, the others addresses (IPv4 or IPv6, CIDR form accepted). */
function addressesAndName(args: readonly string[], command: string): { name: string; addresses: string[] } {
  const name = args[args.length - 1]!;
  const addresses = args.slice(0, -1);
  for (const a of addresses) {
    const bare = a.includes('/') ? a.slice(0, a.indexOf('/')) : a;
    if (!isIpAddress(bare))
      throw new UsageError(`${JSON.stringify(a)} is not an address; write ADDR... NAME, e.g. weft ${command} 10.32.0.5 web`, command);
  }
  checkDnsName(name, command);
  return { name, addresses };
}

function checkDnsName(name: string, command: string): void {
  const fqdn = name.toLowerCase().endsWith('.') ? name.toLowerCase() : `${name.toLowerCase()}.x.`;
  if (isIpAddress(name) || !/^(?=.{2,254}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+$/.test(fqdn)) {
    throw new UsageError(
      `${JSON.stringify(name.slice(0, 80))} is not a name: use letters, digits and '-', e.g. web (or web.example.com. with the final dot)`,
      command,
    );
  }
}

/** Whether an attach argument is meant as an address (then it is checked as one) rather than a container. */
function looksLikeAddress(a: string): boolean {
  // Digits alone are not an address (a Docker id prefix may be all digits): an IPv4 address has its dots.
  return a.startsWith('net:') || a.startsWith('ip:') || /^\d+\.[0-9.]*(\/\d+)?$/.test(a) || a.includes('/') || a.includes(':');
}

/** A Docker container name or id as an attach/detach target (`docker:NAME`). */
function containerTarget(name: string, command: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) {
    throw new UsageError(`${JSON.stringify(name)} is neither an address nor a Docker container name or id; see docker ps`, command);
  }
  return `docker:${name}`;
}

/** `--netns X` -> "X", `--pid N` -> "pid:N"; exactly one of them. */
function targetOf(opts: { netns?: string; pid?: string }, command: string): string {
  if ((opts.netns === undefined) === (opts.pid === undefined)) {
    throw new UsageError('give exactly one of --netns NAME|PATH or --pid PID', command);
  }
  if (opts.pid !== undefined) {
    if (!/^[1-9]\d{0,9}$/.test(opts.pid)) throw new UsageError(`--pid ${JSON.stringify(opts.pid)} is not a process id`, command);
    return `pid:${opts.pid}`;
  }
  if (opts.netns!.length === 0) throw new UsageError('--netns is empty; give an `ip netns` name or a path', command);
  return opts.netns!;
}

function checkPeers(peers: readonly string[], command: string): void {
  for (const p of peers) {
    try {
      parsePeerAddress(p);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message, command);
      throw err;
    }
  }
}

function checkCidrs(cidrs: readonly string[], command: string): void {
  for (const c of cidrs) {
    if (!isCidr(c)) throw new UsageError(`${JSON.stringify(c)} is not an address in CIDR form; write it like 10.32.0.1/12`, command);
  }
}

function checkAttachAddress(a: string, command = 'attach'): void {
  const ok =
    isCidr(a) ||
    a === 'net:default' ||
    (a.startsWith('net:') && isCidr(a.slice(4))) ||
    (a.startsWith('ip:') && (isIpAddress(a.slice(3)) || isCidr(a.slice(3))));
  if (!ok) {
    throw new UsageError(
      `${JSON.stringify(a)} is not an address: write 10.32.1.1/12 (CIDR form), net:default, net:10.32.0.0/16 or ip:10.32.1.1`,
      command,
    );
  }
}

/**
 * `weft launch --foreground`: load the daemon only now (the CLI stays fast for every other command) and run it here
 * (test/import-graph.test.ts lists this lazy load).
 */
async function runDaemonInProcess(config: WeftConfig): Promise<void> {
  const daemon = await import('../daemon/main.js');
  // Pretty, coloured logs for a person watching a terminal; JSON lines otherwise (a pipe, a log collector).
  await daemon.runDaemon(config, { isPretty: process.stdout.isTTY === true });
}
