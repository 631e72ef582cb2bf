// Loss from an nftables rule: a netdev ingress drop on the server-side device,
// in the direction client -> server only, for TCP and UDP. Resolution 0.1 %.
import { LabError, run } from './sh.mjs';

const TABLE = 'ol_loss';
const CHAIN = 'in';

export function nftRuleset(dev, lossPct) {
  const perMille = Math.round(lossPct * 10);
  return [
    `table netdev ${TABLE} {`,
    `  chain ${CHAIN} {`,
    `    type filter hook ingress device "${dev}" priority 0; policy accept;`,
    `    meta l4proto { tcp, udp } numgen random mod 1000 < ${perMille} counter drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function installNftLoss(ns, dev, lossPct) {
  // Offloads off first so a drop never takes a whole GSO/GRO super-packet.
  await run(
    [
      'ip',
      'netns',
      'exec',
      ns,
      'ethtool',
      '-K',
      dev,
      'tso',
      'off',
      'gso',
      'off',
      'gro',
      'off',
      'tx-udp-segmentation',
      'off',
    ],
    { allowFail: true },
  ).catch(() => {});
  try {
    await run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: nftRuleset(dev, lossPct) });
  } catch (err) {
    if (err.code === 'LAB_MISSING_TOOL') {
      throw new LabError('LAB_NO_NFT', 'nft not found: apt-get install --no-install-recommends nftables');
    }
    throw err;
  }
}

/** Packets the nft rule dropped so far. */
export async function nftDropped(ns) {
  const r = await run(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'chain', 'netdev', TABLE, CHAIN]);
  for (const item of JSON.parse(r.stdout).nftables ?? []) {
    for (const e of item.rule?.expr ?? []) {
      if (e.counter) return e.counter.packets;
    }
  }
  return 0;
}
