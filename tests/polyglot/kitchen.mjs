// Every mapped protobuf type and every stream kind from Node: protobuf-es code generated from
// `lokit proto tests.protobuf.services:Kitchen`, called through connect-node.
//
// node kitchen.mjs '{"grpc": "HOST:PORT", "http": "HOST:PORT"}' 'EVERYTHING_AS_PROTO3_JSON'
//
// Prints one JSON object: per transport, Echo's answer as proto3 JSON (protobuf-es's toJson),
// Maybe and Nothing; over gRPC also a client stream (Total) and a bidi stream (Shout), which
// the Connect protocol over HTTP/1.1 cannot carry.

import { fromJson, toJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

import { EverythingSchema, Kitchen } from "./gen/kitchen/v1/kitchen_pb.js";

const addr = JSON.parse(process.argv[2]);
const sent = fromJson(EverythingSchema, JSON.parse(process.argv[3]));
const opts = { timeoutMs: 5000 };

async function* items(values, wrap) {
  for (const v of values) yield wrap(v);
}

const transports = {
  grpc: createGrpcTransport({ baseUrl: `http://${addr.grpc}`, httpVersion: "2" }),
  "connect-json": createConnectTransport({ baseUrl: `http://${addr.http}`, httpVersion: "1.1" }),
  "connect-proto": createConnectTransport({
    baseUrl: `http://${addr.http}`,
    httpVersion: "1.1",
    useBinaryFormat: true,
  }),
};

const results = {};
for (const [name, transport] of Object.entries(transports)) {
  const kitchen = createClient(Kitchen, transport);
  const r = {
    echo: toJson(EverythingSchema, await kitchen.echo(sent, opts)),
    maybeSet: (await kitchen.maybe({ s: "x" }, opts)).v ?? null,
    maybeUnset: (await kitchen.maybe({}, opts)).v ?? null,
    nothing: Object.keys(await kitchen.nothing({}, opts)).filter((k) => k !== "$typeName"),
  };
  if (name === "grpc") {
    const total = await kitchen.total(items([1n, 2n, 39n], (v) => ({ v })), opts);
    r.total = Number(total.v);
    r.shout = [];
    for await (const m of kitchen.shout(items(["a", "bc"], (v) => ({ v })), opts)) {
      r.shout.push(m.v);
    }
  }
  results[name] = r;
}
process.stdout.write(JSON.stringify(results) + "\n");
