{
  "targets": [
    {
      "target_name": "tfo",
      "sources": ["src/tfo.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["src/tfo.c"], "type": "none" }]
      ]
    }
  ]
}
