{
  # The media plane (issue 11). Built by node-gyp during `npm ci` against Node's own headers, which ship
  # OpenSSL 3 and libuv; the `node` binary exports their symbols, so nothing is linked but Node itself.
  "targets": [
    {
      "target_name": "patchbay_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/dtls.cc",
        "native/src/forward.cc",
        "native/src/ice_client.cc",
        "native/src/ice_lite.cc",
        "native/src/napi_client.cc",
        "native/src/napi_transport.cc",
        "native/src/peer.cc",
        "native/src/peer_client.cc",
        "native/src/rtp.cc",
        "native/src/srtp.cc",
        "native/src/stun.cc",
        "native/src/udp_mux.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
    }
  ]
}
