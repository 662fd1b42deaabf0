/**
 * Underlay addresses as the data path carries them: `Endpoint.address` strings in one canonical form (dotted IPv4,
 * RFC 5952 IPv6), and the native addon's four host-order u32 words per address (IPv4 as ::ffff:a.b.c.d). The control
 * plane builds endpoints with `canonicalAddress` and the underlay reports sources with `wordsToAddress`, so the sleeve
 * can compare the two as plain strings.
 */
import ipaddr from 'ipaddr.js';

/**
 * `address` (dotted IPv4 or IPv6) as the addon's four host-order words into `out[at .. at+4)` (IPv4 as
 * ::ffff:a.b.c.d). False, nothing written, when it is not an IP address.
 */
export function addressToWords(address: string, out: Uint32Array, at: number): boolean {
  if (!ipaddr.isValid(address) || (!address.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(address))) return false;
  const parsed = ipaddr.parse(address);
  const bytes = parsed.kind() === 'ipv4' ? (parsed as ipaddr.IPv4).toIPv4MappedAddress().toByteArray() : parsed.toByteArray();
  for (let k = 0; k < 4; k++) {
    out[at + k] = ((bytes[4 * k]! << 24) | (bytes[4 * k + 1]! << 16) | (bytes[4 * k + 2]! << 8) | bytes[4 * k + 3]!) >>> 0;
  }
  return true;
}

/**
 * Four words back into the address string every part of weft compares endpoints by: dotted for IPv4 (also
 * IPv4-mapped), RFC 5952 text for IPv6 (lower case, the longest zero run as ::), as `canonicalAddress` gives.
 */
export function wordsToAddress(words: Uint32Array, at: number): string {
  const w0 = words[at]!;
  const w1 = words[at + 1]!;
  const w2 = words[at + 2]!;
  const w3 = words[at + 3]!;
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return `${w3 >>> 24}.${(w3 >>> 16) & 255}.${(w3 >>> 8) & 255}.${w3 & 255}`;
  const bytes: number[] = [];
  for (const w of [w0, w1, w2, w3]) bytes.push(w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255);
  return (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String();
}

/**
 * The form of an underlay address that underlays report sources in (see `wordsToAddress`), so endpoints
 * from the control plane compare equal to them as strings; anything that is not an IP address comes back unchanged.
 */
export function canonicalAddress(address: string): string {
  const words = new Uint32Array(4);
  return addressToWords(address, words, 0) ? wordsToAddress(words, 0) : address;
}
