import FoundationEssentials
import NIOCore
import NIOHTTP1

/// What `/info` says, and how long it took to say it.
struct ServerInfo: Sendable {
    var webSocket: Bool
    var cookieNeeded: Bool
    var roundTrip: TimeAmount

    private struct Body: Decodable {
        var websocket: Bool?
        var cookie_needed: Bool?
    }

    /// sockjs-client's retransmission timeout from one round trip: 4×RTT above 100 ms, else 300 ms + RTT.
    var roundTripTimeout: TimeAmount {
        roundTrip > .milliseconds(100) ? roundTrip * 4 : .milliseconds(300) + roundTrip
    }

    static func parse(_ body: ByteBuffer, roundTrip: TimeAmount) throws(SockwayClientError) -> ServerInfo {
        guard let decoded = try? JSONDecoder().decode(Body.self, from: Data(body.readableBytesView)) else {
            throw .infoFailed("not a JSON object")
        }
        return ServerInfo(webSocket: decoded.websocket ?? true, cookieNeeded: decoded.cookie_needed ?? false, roundTrip: roundTrip)
    }

    static func fetch(
        target: ClientTarget,
        on loop: any EventLoop,
        meter: TrafficMeter,
        configuration: SockwayClientConfiguration
    ) async throws -> ServerInfo {
        let timeout = configuration.connectTimeout ?? .seconds(10)
        let promise = loop.makePromise(of: ServerInfo.self)
        loop.execute {
            HTTPClientConnection.connect(to: target, on: loop, meter: meter, timeout: timeout).assumeIsolated().whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(error)
                case .success(let connection):
                    request(on: connection, timeout: timeout, headers: configuration.extraHeaders, promise: promise)
                }
            }
        }
        return try await promise.futureResult.get()
    }

    private static func request(
        on connection: HTTPClientConnection,
        timeout: TimeAmount,
        headers: [(String, String)],
        promise: EventLoopPromise<ServerInfo>
    ) {
        let timer = connection.channel.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            promise.fail(SockwayClientError.infoFailed("timed out"))
            connection.close()
        }
        let started = NIODeadline.now()
        var status = HTTPResponseStatus.ok
        var body = ByteBuffer()
        connection.request(
            .GET,
            "/info",
            headers: headers,
            response: .init(
                onHead: { status = $0.status },
                onBody: { part in
                    var part = part
                    if body.readableBytes + part.readableBytes <= 64 * 1024 { body.writeBuffer(&part) }
                },
                onEnd: { error in
                    timer.cancel()
                    connection.close()
                    if let error { return promise.fail(error) }
                    guard status == .ok else { return promise.fail(SockwayClientError.infoFailed("status \(status.code)")) }
                    promise.completeWith(Result { try parse(body, roundTrip: .now() - started) })
                }
            )
        )
    }
}
