// One step of tests/test_toxiproxy.py through Toxiproxy's own Node client, unchanged:
//   node drive.js ADMIN_URL list
//   node drive.js ADMIN_URL add PROXY TYPE ATTRIBUTES_JSON
//   node drive.js ADMIN_URL remove PROXY TOXIC_NAME
//   node drive.js ADMIN_URL enabled PROXY true|false
// prints the client's view as JSON.
"use strict";
const { Toxiproxy } = require("toxiproxy-node-client");

async function main([url, action, ...args]) {
  const toxiproxy = new Toxiproxy(url);
  switch (action) {
    case "list": {
      const proxies = await toxiproxy.getAll();
      return Object.values(proxies).map((p) => p.toJson());
    }
    case "add": {
      const [name, type, attributes] = args;
      const proxy = await toxiproxy.get(name);
      const toxic = await proxy.addToxic({ type, stream: "downstream", toxicity: 1, attributes: JSON.parse(attributes) });
      return toxic.toJson();
    }
    case "remove": {
      const [name, toxicName] = args;
      const toxic = await (await toxiproxy.get(name)).getToxic(toxicName);
      await toxic.remove();
      return { removed: toxicName };
    }
    case "enabled": {
      const [name, enabled] = args;
      const proxy = await toxiproxy.get(name);
      return (await proxy.update({ enabled: enabled === "true" })).toJson();
    }
    default:
      throw new Error(`unknown action ${action}`);
  }
}

main(process.argv.slice(2)).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(String(error));
    process.exit(1);
  },
);
