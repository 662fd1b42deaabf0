/**
 * The programs weft runs on the host, checked once at launch so a missing one is one clear error naming the Debian
 * package to install, instead of a failure deep inside the first `weft attach`.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Program -> the Debian package that provides it, and what weft uses it for. */
export const HOST_TOOLS: Readonly<Record<string, { package: string; usedFor: string }>> = {
  ip: { package: 'iproute2', usedFor: 'the bridge, veth endpoints, addresses and routes' },
  ethtool: { package: 'ethtool', usedFor: 'checksum and segmentation offloads of the TAP and container interfaces' },
  nsenter: { package: 'util-linux', usedFor: 'entering container namespaces given by --pid or path' },
};

/** The programs of `tools` not found as executables on `path` (a PATH string). */
export function missingTools(tools: readonly string[] = Object.keys(HOST_TOOLS), path = process.env['PATH'] ?? ''): string[] {
  const dirs = path.split(delimiter).filter((d) => d.length > 0);
  return tools.filter(
    (tool) =>
      !dirs.some((dir) => {
        try {
          accessSync(join(dir, tool), constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
  );
}

/** One line for people: which programs are missing and `apt-get install` of their packages. */
export function missingToolsMessage(missing: readonly string[]): string {
  const packages = [...new Set(missing.map((t) => HOST_TOOLS[t]?.package ?? t))];
  const uses = missing.map((t) => `${t} (${HOST_TOOLS[t]?.usedFor ?? 'needed by weft'})`).join(', ');
  return `weft needs programs that are not installed: ${uses}; install them with: apt-get install ${packages.join(' ')}`;
}
