/**
 * `originlink info [--json]`: what this installation has — versions, which
 * native pieces loaded (and why not), the QUIC binding and the quiche
 * version compiled into it, and the kernel features the transports use.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release } from 'node:os';
import { BINDING_PACKAGE, quicEngine, quicheAvailable } from '../quic/quiche.js';
import { socketFd, udpAddon, udpAddonPath, udpAddonReason } from '../quic/udp-native.js';
import { setTfoLogger, tfoAddonStatus, tfoSysctl } from '../net/tfo.js';
import { packageVersion } from './version.js';

export interface Info {
  originlink: string;
  node: string;
  platform: string;
  kernel: string;
  addons: {
    tfo: { loaded: boolean; path: string; reason: string | null };
    udp: { loaded: boolean; path: string; reason: string | null; batchedReceive: boolean };
  };
  quic: {
    binding: string;
    bindingVersion: string | null;
    loaded: boolean;
    quiche: string | null;
    path: string;
    fallbackReason: string | null;
  };
  kernelFeatures: {
    /** net.ipv4.tcp_fastopen of this network namespace (0x1 client, 0x2 server). */
    tcpFastopen: number | null;
    tfoClient: boolean;
    /** UDP_SEGMENT (GSO) accepted on a UDP socket (needs the udp addon to ask). */
    udpGso: boolean | null;
    /**
     * The kernel's transparent huge pages mode (`always`, `madvise`, `never`; null: none here). Under `madvise` or
     * `always`, `NODE_OPTIONS=--use-largepages=silent` maps node's code onto 2 MiB pages (docs/service.md says when
     * it pays).
     */
    transparentHugePages: string | null;
  };
}

/** The selected mode of /sys/kernel/mm/transparent_hugepage/enabled (`always [madvise] never`), null without THP. */
function thpMode(): string | null {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

const require = createRequire(import.meta.url);

/** The fallback package's own version (ours is the package's: native/quic is built with it). */
function bindingVersion(binding: string): string | null {
  if (binding !== BINDING_PACKAGE) return packageVersion();
  try {
    return (require(`${BINDING_PACKAGE}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

async function gsoProbe(): Promise<boolean | null> {
  const a = udpAddon();
  if (!a) return null;
  const s = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const fd = socketFd(s);
    return fd === null ? null : a.gsoSupported(fd);
  } catch {
    return null;
  } finally {
    s.close();
  }
}

export async function collectInfo(): Promise<Info> {
  setTfoLogger(() => {}); // the status is reported here, not warned about
  const tfo = tfoAddonStatus();
  const udp = udpAddon();
  const sysctl = tfoSysctl();
  return {
    originlink: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    kernel: release(),
    addons: {
      tfo: { loaded: tfo.reason === null, path: tfo.path, reason: tfo.reason },
      udp: {
        loaded: udp !== null,
        path: udpAddonPath(),
        reason: udpAddonReason(),
        batchedReceive: typeof udp?.rxStart === 'function',
      },
    },
    quic: (() => {
      const loaded = quicheAvailable();
      const e = quicEngine();
      return {
        binding: e.binding,
        bindingVersion: bindingVersion(e.binding),
        loaded,
        quiche: e.quiche,
        path: e.path,
        fallbackReason: e.fallbackReason,
      };
    })(),
    kernelFeatures: {
      tcpFastopen: sysctl,
      tfoClient: sysctl !== null && (sysctl & 1) === 1,
      udpGso: await gsoProbe(),
      transparentHugePages: thpMode(),
    },
  };
}

const INFO_USAGE =
  'usage: originlink info [--json]   versions, native addons (loaded or why not), QUIC binding, kernel features';

export async function runInfo(argv: string[]): Promise<number> {
  const unknown = argv.find((a) => a !== '--json');
  if (unknown !== undefined) {
    const help = unknown === '--help' || unknown === '-h';
    (help ? process.stdout : process.stderr).write(
      `${help ? '' : `originlink info: unknown option ${JSON.stringify(unknown)}\n`}${INFO_USAGE}\n`,
    );
    return help ? 0 : 2;
  }
  const info = await collectInfo();
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return 0;
  }
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const lines = [
    `originlink ${info.originlink} on node ${info.node} (${info.platform}, kernel ${info.kernel})`,
    `TFO addon:        ${info.addons.tfo.loaded ? `loaded (${info.addons.tfo.path})` : `not loaded: ${info.addons.tfo.reason}`}`,
    `UDP addon:        ${info.addons.udp.loaded ? `loaded (${info.addons.udp.path}), batched receive ${yes(info.addons.udp.batchedReceive)}` : `not loaded: ${info.addons.udp.reason}`}`,
    `QUIC binding:     ${info.quic.binding} ${info.quic.bindingVersion ?? '?'} (${info.quic.loaded ? 'loads' : 'does not load'}), quiche ${info.quic.quiche ?? 'unknown'}${info.quic.fallbackReason ? ` — fallback: ${info.quic.fallbackReason}` : ''}`,
    `tcp_fastopen:     ${info.kernelFeatures.tcpFastopen ?? 'unknown'} (client TFO ${yes(info.kernelFeatures.tfoClient)})`,
    `UDP GSO:          ${info.kernelFeatures.udpGso === null ? 'unknown (needs the UDP addon)' : yes(info.kernelFeatures.udpGso)}`,
    `huge pages:       ${info.kernelFeatures.transparentHugePages ?? 'none'} (serve's code on 2 MiB pages: ${yes(info.kernelFeatures.transparentHugePages === 'madvise' || info.kernelFeatures.transparentHugePages === 'always')})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
