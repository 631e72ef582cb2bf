{
  "targets": [
    {
      "target_name": "udp",
      "sources": ["src/udp.c", "src/steer.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["src/udp.c", "src/steer.c"], "type": "none" }]
      ]
    }
  ]
}
