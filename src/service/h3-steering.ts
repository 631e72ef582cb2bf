/**
 * The h3 front on every worker of `serve --workers` (docs/workers.md): the primary makes, per h3 listener, the
 * eBPF map that steers its port's QUIC packets by connection ID (native/udp/src/steer.c) and resolves its port (a
 * port 0 becomes one free port for every worker), then hands each worker the map's descriptor (inherited, after the
 * IPC channel) and the port. Each worker binds the port with SO_REUSEPORT, puts its socket at its slot's index and
 * issues connection IDs beginning with that index. The maps live as long as the primary: a restarted worker takes
 * its slot's place again.
 */
import dgram from 'node:dgram';
import { udpAddon, udpAddonReason } from '../quic/udp-native.js';
import type { ServiceConfig } from './config.js';
import type { H3Steering } from './worker-slot.js';

/** What the primary gives its workers: the environment value (H3_STEER_ENV) and the descriptors to pass on. */
export interface SteeringSetup {
  steering: H3Steering;
  /** The maps' descriptors, in the order of the workers' descriptors 4, 5, … */
  fds: number[];
}

/**
 * Steering for the h3 listeners of `config` run by `workers` workers, or the reason there is none (then worker 1
 * serves them alone, as before): one worker, no h3 listener, no addon, or a kernel that refuses the map (no BPF).
 */
export async function setUpSteering(config: ServiceConfig, workers: number): Promise<SteeringSetup | string> {
  const h3 = config.listeners.filter((l) => l.kind === 'h3');
  if (workers < 2 || h3.length === 0) return 'nothing to steer';
  const addon = udpAddon();
  if (!addon?.steerMap) return `the native udp addon is ${udpAddonReason() ?? 'an older build'}`;
  const steering: H3Steering = {};
  const fds: number[] = [];
  for (const l of h3) {
    const fd = addon.steerMap(workers);
    if (fd < 0) return `the kernel refused a BPF map (errno ${-fd}: BPF needs CAP_BPF or root)`;
    const port = l.port !== 0 ? l.port : await freeUdpPort(l.host);
    // Inherited descriptors start after stdin, stdout, stderr and the IPC channel.
    steering[l.name] = { fd: 4 + fds.length, port };
    fds.push(fd);
  }
  return { steering, fds };
}

/** A UDP port free on `host` now (bound and let go: the workers bind it together right after). */
function freeUdpPort(host: string): Promise<number> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
