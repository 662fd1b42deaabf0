import { describe, expect, it } from 'vitest';
import {
  BROADCAST,
  DELIVER,
  DROP,
  FLOOD,
  ForwardingDecision,
  RELAY,
  type DecisionCounters,
  type ForwardingView,
} from './forwarding-decision.js';
import { MacTable } from './mac-table.js';
import { PeerNumbers } from './peer-numbers.js';

interface Hop {
  readonly number: number;
  readonly name: string;
}

/** Peers 1 (us), 2, 3, 4 numbered 0..3; neighbours 2 and 3; 4 reached via 3. */
function world() {
  const peers = new PeerNumbers(8);
  for (const id of [1, 2, 3, 4]) peers.numberOf(id);
  const hop2: Hop = { number: 1, name: 'h2' };
  const hop3: Hop = { number: 2, name: 'h3' };
  const view: ForwardingView<Hop> = {
    localNumber: 0,
    unicastByNumber: [null, hop2, hop3, hop3],
    capturedUnicastByNumber: [null, hop2, hop3, hop3],
    broadcastByNumber: [[hop2, hop3], [hop3], [hop2], []],
    localBroadcast: [hop2, hop3],
  };
  const counters: DecisionCounters = {
    mac_moves: 0,
    mac_table_full: 0,
    drop_local_dest: 0,
    drop_no_route: 0,
    drop_fastdp: 0,
    drop_loop: 0,
    drop_unknown_peer: 0,
  };
  const decision = new ForwardingDecision<Hop>(new MacTable(), peers, counters);
  return { view, counters, decision, hop2, hop3 };
}

/** A record header [capturing | destination] for peers given as numbers (0: broadcast). */
function record(capturing: number, destination: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUIntBE(capturing, 0, 6);
  b.writeUIntBE(destination, 6, 6);
  return b;
}

function ethernet(dst: number, src: number): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  return f;
}

describe('ForwardingDecision', () => {
  it('floods a captured frame to an unknown MAC, then sends it to the one next hop once the MAC is learned', () => {
    const { view, decision, hop3 } = world();
    expect(decision.decideCaptured(view, ethernet(0x02_0000_0000_44, 0x02_0000_0000_11), 0, 0)).toBe(FLOOD);
    decision.learn(ethernet(0, 0x02_0000_0000_44), 6, 3, 0); // seen behind peer 4 (number 3)
    expect(decision.decideCaptured(view, ethernet(0x02_0000_0000_44, 0x02_0000_0000_11), 0, 1)).toBe(3);
    expect(decision.nextHop).toBe(hop3);
    // The captured frame's source was learned as ours: a frame to it is the bridge's business.
    expect(decision.decideCaptured(view, ethernet(0x02_0000_0000_11, 0x02_0000_0000_12), 0, 2)).toBe(DROP);
  });

  it('delivers records for us, relays others to their next hop, and floods broadcasts along the tree', () => {
    const { view, decision, hop2, hop3 } = world();
    expect(decision.decideReceived(view, hop2, record(2, 1), 0)).toBe(DELIVER);
    expect(decision.decideReceived(view, hop2, record(2, 4), 0)).toBe(RELAY);
    expect(decision.nextHop).toBe(hop3);
    expect(decision.decideReceived(view, hop2, record(2, 0), 0)).toBe(BROADCAST);
    expect(decision.capturing).toBe(1);
    expect(decision.mayRelay(hop3, hop2, 1)).toBe(true);
    expect(decision.mayRelay(hop2, hop2, 1)).toBe(false);
  });

  it("drops what it captures for a fastdp peer (counted as drop_fastdp) but still relays other peers' frames to it", () => {
    const { view, counters, decision, hop2, hop3 } = world();
    // Peer 3 (number 2) is on fastdp: the kernel carries our own frames to it.
    const fastdp = { ...view, capturedUnicastByNumber: [null, hop2, null, hop3] };
    decision.learn(ethernet(0, 0x02_0000_0000_33), 6, 2, 0);
    expect(decision.decideCaptured(fastdp, ethernet(0x02_0000_0000_33, 0x02_0000_0000_11), 0, 1)).toBe(DROP);
    expect(counters.drop_fastdp).toBe(1);
    expect(counters.drop_no_route).toBe(0);
    expect(decision.decideReceived(fastdp, hop2, record(2, 3), 0)).toBe(RELAY);
    expect(decision.nextHop).toBe(hop3);
  });

  it('never relays back the way a frame came: not to the sender, not to the capturing peer; counts drop_loop', () => {
    const { view, counters, decision, hop2, hop3 } = world();
    // Captured by 3, arriving from 2, for 4, whose next hop is 3: handing it back to its capturer would loop.
    expect(decision.decideReceived(view, hop2, record(3, 4), 0)).toBe(DROP);
    // Arriving from 3 for 4 (next hop 3): back to the sender.
    expect(decision.decideReceived(view, hop3, record(2, 4), 0)).toBe(DROP);
    // Captured by us: it came round.
    expect(decision.decideReceived(view, hop2, record(1, 4), 0)).toBe(DROP);
    expect(counters.drop_loop).toBe(3);
    expect(decision.decideReceived(view, hop2, record(9, 4), 0)).toBe(DROP);
    expect(counters.drop_unknown_peer).toBe(1);
  });
});
