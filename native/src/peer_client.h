// Client-mode helpers around PeerCore (peer_client.cc also holds PeerCore's client-mode members, declared in
// peer.h): what the benchmark's native load generator needs beyond the server's use of a peer.
#pragma once
#include <cstddef>
#include <cstdint>

#include "peer.h"

namespace pb {

/**
 * Sends every packet of a batch in the receive batches' framing, `[u16 length][u8 kind: 0 RTP, 1 RTCP][u8 0]
 * [bytes]…`, through `peer` (sendRtp/sendRtcp, so consent and connection state apply). Returns how many were
 * sent; a truncated frame ends the batch.
 */
uint32_t sendMediaBatch(PeerCore& peer, const uint8_t* data, size_t len);

}  // namespace pb
