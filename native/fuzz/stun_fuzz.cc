// libFuzzer target: any datagram through the STUN parser and both checks; an accepted request gets a reply.
#include "../src/stun.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pb::StunMessage m;
  if (!pb::parseStun(data, size, m)) return 0;
  pb::stunIntegrityValid(data, size, m, "VOkJxbRl1RmTxUk/WvJxBt");
  pb::stunFingerprintValid(data, size, m);
  uint8_t out[256];
  const uint8_t addr[16] = {127, 0, 0, 1};
  pb::buildStunBindingSuccess(out, sizeof out, m.transactionId, 4, addr, 5000, "key");
  pb::buildStunBindingError(out, sizeof out, m.transactionId, 400, m.username);
  return 0;
}
