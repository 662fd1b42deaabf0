/**
 * The sleeve's counters: one plain number field per event or drop reason, incremented by the send side, the
 * receive side, pieces and heartbeats, read at scrape time (`Sleeve.counters()`, `weft report`, metrics). Not a
 * pipeline stage: nothing here runs per packet except `countOpenDrop`, which maps an `OpenResult` to its field.
 */
import { OpenResult } from '../crypto/data-session.js';

/**
 * Counters, read at scrape time. Frames are counted per copy: a broadcast sent to two neighbours is two
 * `frames_out`. Every drop is counted under `drop_<reason>`.
 */
export interface SleeveCounters {
  /** Frames read from the bridge. */
  frames_captured: number;
  /** Records appended to datagrams for neighbours (captured or relayed). */
  frames_out: number;
  /** Records received in accepted datagrams. */
  frames_in: number;
  /** Frames written to the bridge. */
  frames_delivered: number;
  /** Records relayed to another neighbour (unicast through us, or broadcast along a tree). */
  frames_forwarded: number;
  datagrams_out: number;
  datagrams_in: number;
  /** UDP payload bytes sent. */
  bytes_out: number;
  /** UDP payload bytes received (accepted or not). */
  bytes_in: number;
  heartbeats_out: number;
  heartbeats_in: number;
  heartbeat_acks_out: number;
  heartbeat_acks_in: number;
  /** Heartbeats sent because data to a neighbour went unanswered (fast dead-path detection; within heartbeats_out). */
  probes_out: number;
  /** Paths declared lost because probes went unanswered while traffic flowed. */
  paths_lost_probes: number;
  /** Paths declared lost by the heartbeat timeout. */
  paths_lost_timeout: number;
  /** Times our own check timer fired late (an event-loop stall: no probe counted as missed then). */
  own_stalls: number;
  /** A MAC seen behind a different peer than before (a container moved, or a loop). */
  mac_moves: number;
  /** A new MAC not learned because the table was full. */
  mac_table_full: number;
  /** ICMP "fragmentation needed" replies written to the bridge. */
  icmp_frag_needed: number;
  /** ICMPv6 "packet too big" replies written to the bridge. */
  icmp_packet_too_big: number;
  /** MTU probes sent (./path-mtu.ts), acks of ours received, acks of theirs sent. */
  mtu_probes_out: number;
  mtu_probe_acks_in: number;
  mtu_probe_acks_out: number;
  /** Times a neighbour's path MTU changed (raised by an ack, or lowered when a round ended). */
  path_mtu_changes: number;
  /** Frames captured before the first snapshot. */
  drop_no_snapshot: number;
  /** Captured frames shorter than an Ethernet header. */
  drop_runt: number;
  /** Captured frames to a MAC on our own bridge (the bridge already delivered them). */
  drop_local_dest: number;
  /** Frames to a peer with no route. */
  drop_no_route: number;
  /** Captured frames for a peer on fastdp: the bridge flooded them to the VXLAN port too, which carries them. */
  drop_fastdp: number;
  /** Frames too big for the path MTU to the next hop. */
  drop_too_big: number;
  /** Records that came back to their capturing peer or would go back to their sender. */
  drop_loop: number;
  /** Unicast records and pieces that would be relayed past MAX_RELAYS routers (a loop while routes converge). */
  drop_hop_limit: number;
  /** Frames the bridge would not take. */
  drop_capture_full: number;
  /** Datagrams the session refused to seal (no current key). */
  drop_seal: number;
  /** Datagrams shorter than the header, or too short to hold a tag. */
  drop_short: number;
  drop_magic: number;
  /** Reserved message type or flag bits. */
  drop_unknown_type: number;
  drop_bad_seq: number;
  /** Datagrams whose sender is not a neighbour in the snapshot. */
  drop_unknown_sender: number;
  /**
   * Clear datagrams naming a neighbour as sender but coming from another address or port (a clear datagram proves
   * nothing about its sender). A sealed one from elsewhere is opened: if it is not authentic it counts as
   * `drop_decrypt` (or `drop_replay`, ...), if it is, the neighbour moved (`endpoint_moves`).
   */
  drop_bad_source: number;
  /** A neighbour's endpoint moved to where an authentic sealed datagram came from (roaming, NAT rebinding). */
  endpoint_moves: number;
  /** Clear datagrams from a neighbour we share a session with. */
  drop_cleartext: number;
  /** Sealed datagrams from a neighbour we share no session with. */
  drop_unexpected_sealed: number;
  /** Authentication failed. */
  drop_decrypt: number;
  /** Sequence number already seen or behind the replay window. */
  drop_replay: number;
  /** No receive key for the datagram's key phase. */
  drop_no_key: number;
  /** A record cut short, overrunning the body, or holding less than an Ethernet header. */
  drop_bad_record: number;
  /** Records whose capturing peer is not in the snapshot (nowhere to learn its MACs to, no tree to relay on). */
  drop_unknown_peer: number;
  /** Captured frames with a partial checksum that we finished (offloads). */
  checksums_completed: number;
  /** Offloaded frames (TCP super-frames) sent in pieces, per next hop. */
  offloaded_out: number;
  /** Offloaded TCP super-frames cut into TCP segments (./tcp-segments.ts), per next hop. */
  segmented_out: number;
  /** TCP segments cut from super-frames and sent, one per datagram. */
  segments_out: number;
  /** Received TCP segments merged into a larger frame before the bridge (./tcp-coalesce.ts). */
  segments_coalesced: number;
  /** Frames of several coalesced TCP segments written to the bridge as one super-frame. */
  coalesced_delivered: number;
  /** Received TCP segments that did not continue the frame being coalesced for their flow (a segment lost before). */
  segment_gaps: number;
  /** Datagrams from neighbours found missing: gaps in their sequence numbers, less late ones that filled a gap. */
  datagrams_missed: number;
  /** Heartbeat-acks in which a neighbour reported datagrams of ours missing (super-frames to it go as segments). */
  loss_reports_in: number;
  /** Offloaded frames joined from their pieces and written to the bridge whole. */
  offloaded_delivered: number;
  /** Offloaded frames joined from their pieces and cut into ordinary segments for a bridge without offloads (pcap). */
  offloaded_segmented: number;
  /** Piece datagrams sent (captured or relayed). */
  pieces_out: number;
  /** Piece datagrams received. */
  pieces_in: number;
  /** Pieces relayed to another neighbour. */
  pieces_forwarded: number;
  /** Pieces that did not continue their frame (a piece lost or reordered before them), or whose frame was given up. */
  drop_piece_gap: number;
  /** Piece headers that make no sense (lengths, offsets, an offload header no kernel should see). */
  drop_bad_piece: number;
  /** Captured frames whose offload header we cannot act on (checksum offsets outside the frame, unknown kind). */
  drop_bad_offload: number;
  /** Offloaded frames for a bridge that takes no offloads (a capture without a virtio_net_hdr) that could not be segmented. */
  drop_offload_unsupported: number;
  /** First pieces of a frame dropped because the reassembly budget was spent (see ./pieces.ts). */
  drop_reassembly_full: number;
}

export function newCounters(): SleeveCounters {
  return {
    frames_captured: 0,
    frames_out: 0,
    frames_in: 0,
    frames_delivered: 0,
    frames_forwarded: 0,
    datagrams_out: 0,
    datagrams_in: 0,
    bytes_out: 0,
    bytes_in: 0,
    heartbeats_out: 0,
    heartbeats_in: 0,
    heartbeat_acks_out: 0,
    heartbeat_acks_in: 0,
    probes_out: 0,
    paths_lost_probes: 0,
    paths_lost_timeout: 0,
    own_stalls: 0,
    mac_moves: 0,
    mac_table_full: 0,
    icmp_frag_needed: 0,
    icmp_packet_too_big: 0,
    mtu_probes_out: 0,
    mtu_probe_acks_in: 0,
    mtu_probe_acks_out: 0,
    path_mtu_changes: 0,
    drop_no_snapshot: 0,
    drop_runt: 0,
    drop_local_dest: 0,
    drop_no_route: 0,
    drop_fastdp: 0,
    drop_too_big: 0,
    drop_loop: 0,
    drop_hop_limit: 0,
    drop_capture_full: 0,
    drop_seal: 0,
    drop_short: 0,
    drop_magic: 0,
    drop_unknown_type: 0,
    drop_bad_seq: 0,
    drop_unknown_sender: 0,
    drop_bad_source: 0,
    endpoint_moves: 0,
    drop_cleartext: 0,
    drop_unexpected_sealed: 0,
    drop_decrypt: 0,
    drop_replay: 0,
    drop_no_key: 0,
    drop_bad_record: 0,
    drop_unknown_peer: 0,
    checksums_completed: 0,
    offloaded_out: 0,
    segmented_out: 0,
    segments_out: 0,
    segments_coalesced: 0,
    coalesced_delivered: 0,
    segment_gaps: 0,
    datagrams_missed: 0,
    loss_reports_in: 0,
    offloaded_delivered: 0,
    offloaded_segmented: 0,
    pieces_out: 0,
    pieces_in: 0,
    pieces_forwarded: 0,
    drop_piece_gap: 0,
    drop_bad_piece: 0,
    drop_bad_offload: 0,
    drop_offload_unsupported: 0,
    drop_reassembly_full: 0,
  };
}

/** Count a datagram the session would not open (`r`: a negative `OpenResult`) under its reason. */
export function countOpenDrop(s: SleeveCounters, r: number): void {
  if (r === OpenResult.BadTag) s.drop_decrypt++;
  else if (r === OpenResult.Replay || r === OpenResult.Stale) s.drop_replay++;
  else if (r === OpenResult.NoKey) s.drop_no_key++;
  else s.drop_short++;
}
