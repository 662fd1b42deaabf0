{
  "variables": {
    "has_pcap": "<!(test -f /usr/include/pcap/pcap.h && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "src/addon.c",
        "src/aead.c",
        "src/aead-calls.c",
        "src/aegis.c",
        "src/pcap.c",
        "src/reader.c",
        "src/tap.c",
        "src/udp.c"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["has_pcap==1", {"defines": ["WEFT_HAVE_PCAP"], "libraries": ["-lpcap"]}]
      ]
    }
  ]
}
