// Echo server on ws://127.0.0.1:PORT/echo/websocket: every message comes back with the same type.
// No extensions (so no compression), UTF-8 of text messages validated (as Sockway and ws do).
//   HummingbirdEcho PORT
import Hummingbird
import HummingbirdWebSocket
import Logging

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8082 : 8082
var logger = Logger(label: "HummingbirdEcho")
logger.logLevel = .notice

let app = Application(
    router: Router(),
    server: .http1WebSocketUpgrade(
        configuration: .init(ws: .init(maxFrameSize: 1 << 20, extensions: [], autoPing: .disabled, validateUTF8: true))
    ) { request, _, _ in
        guard request.path == "/echo/websocket" else { return .dontUpgrade }
        return .upgrade([:]) { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: 1 << 20) {
                switch message {
                case .text(let string): try await outbound.write(.text(string))
                case .binary(let buffer): try await outbound.write(.binary(buffer))
                }
            }
        }
    },
    configuration: .init(address: .hostname("127.0.0.1", port: port)),
    logger: logger
)
print("hummingbird echo listening on ws://127.0.0.1:\(port)/echo/websocket")
try await app.runService()
