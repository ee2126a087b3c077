// Virtual AGVs of vda-5050-lib (VDA 5050 2.0): an AgvController with the library's VirtualAgvAdapter per
// vehicle, connected to the local Mosquitto with the vehicle's own account. Started by
// tests/integration/vda5050/test_vda5050_lib.py; configuration as JSON in argv[2]; prints "ready" when every
// vehicle is started, stops them (gracefully: OFFLINE) on SIGTERM.
"use strict";
const { AgvController, VirtualAgvAdapter } = require("vda-5050-lib");

const config = JSON.parse(process.argv[2]);

function factsheet(serial) {
    return {
        typeSpecification: {
            seriesName: "VirtualAGV", agvKinematic: "OMNI", agvClass: "CARRIER", maxLoadMass: 1000,
            localizationTypes: ["NATURAL"], navigationTypes: ["AUTONOMOUS"],
        },
        physicalParameters: {
            speedMin: 0, speedMax: config.speed, accelerationMax: 1, decelerationMax: 1, heightMax: 1.5,
            width: 1, length: 1.5,
        },
        protocolLimits: {
            maxStringLens: {}, maxArrayLens: { "order.nodes": 500, "order.edges": 499 },
            timing: { minOrderInterval: 0.1, minStateInterval: 0.1 },
        },
        protocolFeatures: {
            optionalParameters: [],
            agvActions: [
                { actionType: "pick", actionScopes: ["NODE"] },
                { actionType: "drop", actionScopes: ["NODE"] },
                { actionType: "startCharging", actionScopes: ["INSTANT", "NODE"] },
            ],
        },
        agvGeometry: {},
        loadSpecification: { loadSets: [{ setName: "pallet", loadType: "EPAL" }] },
    };
}

// The library's virtual AGV, telling the controller its factsheet (the public updateFactsheet call).
class FactsheetAgvAdapter extends VirtualAgvAdapter {
    attach(context) {
        super.attach(context);
        this.controller.updateFactsheet(factsheet(this.controller.agvId.serialNumber));
    }
}

async function main() {
    const controllers = [];
    for (const v of config.vehicles) {
        const controller = new AgvController(
            { manufacturer: config.manufacturer, serialNumber: v.serial },
            {
                interfaceName: config.interfaceName,
                vdaVersion: "2.0.0",
                transport: {
                    brokerUrl: config.brokerUrl,
                    username: `${config.manufacturer}/${v.serial}`,
                    password: config.password,
                    heartbeat: 5,
                },
            },
            { agvAdapterType: FactsheetAgvAdapter, publishStateInterval: 1000, publishVisualizationInterval: 0 },
            {
                initialPosition: { mapId: config.mapId, x: v.x, y: v.y, theta: 0, lastNodeId: v.node },
                vehicleSpeed: config.speed,
                timeLapse: config.timeLapse,
            },
        );
        await controller.start();
        controllers.push(controller);
    }
    console.log("ready");
    const stop = async () => {
        for (const c of controllers) {
            try { await c.stop(); } catch (e) { console.error(e); }
        }
        process.exit(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch(e => { console.error(e); process.exit(1); });
