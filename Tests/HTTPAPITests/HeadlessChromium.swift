import AsyncHTTPClient
import DevServices
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// A real headless Chromium (Debian's `chromium`), driven the way a person uses a page: it
/// loads a URL, runs the page's own script, and is asked what the page shows, has a button
/// clicked or a form filled in, through the DevTools protocol over a WebSocket. Dialogs the
/// page opens (`confirm`) are accepted, as a person clicking OK, and remembered.
struct HeadlessChromium {
    /// `chromium` (Debian), or another Chromium-based browser on PATH.
    static var executable: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            for folder in path.split(separator: ":") {
                let candidate = "\(folder)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }

    static let missingMessage =
        "SKIPPED: the web console browser tests need Chromium and none was found (apt-get install -y chromium; .ci/run installs it)"

    /// Starts Chromium on `url`, runs `body` with its page, then stops the browser.
    static func withPage<T: Sendable>(_ url: String, width: Int = 1400, height: Int = 1000,
                                      _ body: @Sendable (DevToolsPage) async throws -> T) async throws -> T {
        guard let executable else { throw BrowserError(Self.missingMessage) }
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: profile) }
        let log = profile.appendingPathComponent("chromium.log").path
        let browser = try ChildProcess(
            executable: URL(fileURLWithPath: executable),
            arguments: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                        "--no-default-browser-check", "--remote-debugging-port=0", "--user-data-dir=\(profile.path)",
                        "--window-size=\(width),\(height)", "about:blank"],
            outputPath: log)
        do {
            let port = try await devToolsPort(profile: profile, log: log)
            let socketPath = try await pageSocketPath(port: port)
            let result = try await DevToolsPage.connect(port: port, path: socketPath) { page in
                try await page.call("Page.enable")
                try await page.call("Runtime.enable")
                try await page.call("Page.navigate", ["url": url])
                return try await body(page)
            }
            browser.send(SIGTERM)
            _ = await browser.waitForExit()
            return result
        } catch {
            browser.send(SIGKILL)
            _ = await browser.waitForExit()
            throw error
        }
    }

    /// Chromium writes the port it chose into the profile once it listens.
    private static func devToolsPort(profile: URL, log: String) async throws -> Int {
        let file = profile.appendingPathComponent("DevToolsActivePort").path
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let port = text.split(separator: "\n").first.flatMap({ Int($0) })
            {
                return port
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BrowserError("Chromium did not open its DevTools port within 30 s: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    /// The WebSocket path of the browser's one page (`/json/list`).
    private static func pageSocketPath(port: Int) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/json/list"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let targets = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [[String: Any]] ?? []
        guard let page = targets.first(where: { $0["type"] as? String == "page" }),
              let socket = page["webSocketDebuggerUrl"] as? String, let url = URL(string: socket)
        else {
            throw BrowserError("Chromium listed no page target: \(String(buffer: body))")
        }
        return url.path
    }
}

struct BrowserError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What the WebSocket upgrade of a DevTools connection ended with.
private enum DevToolsUpgrade: Sendable { case socket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>), refused }

/// One page over the DevTools protocol: commands by id, answers matched back, dialogs accepted.
final class DevToolsPage: Sendable {
    private struct State {
        var nextId = 0
        var waiting: [Int: CheckedContinuation<Data, any Error>] = [:]
        var dialogs: [String] = []
        var closed = false
    }
    private let state = Mutex(State())
    private let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>

    private init(outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>) {
        self.outbound = outbound
    }

    /// The messages of the dialogs the page opened, oldest first.
    var dialogs: [String] { state.withLock { $0.dialogs } }

    static func connect<T: Sendable>(port: Int, path: String, _ body: @Sendable (DevToolsPage) async throws -> T) async throws -> T {
        let upgrade: EventLoopFuture<DevToolsUpgrade> = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<DevToolsUpgrade>(maxFrameSize: 1 << 26) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            // Chromium may split a long answer (a screenshot) into fragments.
                            try channel.pipeline.syncOperations.addHandler(
                                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 10_000,
                                                            maxAccumulatedFrameSize: 1 << 27))
                            return DevToolsUpgrade.socket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                        }
                    }
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "127.0.0.1:\(port)")
                    headers.add(name: "Content-Length", value: "0")
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration(
                        upgradeRequestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers),
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeCompletedFuture { DevToolsUpgrade.refused } })
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(upgradeConfiguration: configuration))
                }
            }
        guard case .socket(let channel) = try await upgrade.get() else {
            throw BrowserError("Chromium refused the DevTools WebSocket on port \(port)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let page = DevToolsPage(outbound: outbound)
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    do {
                        for try await frame in inbound where frame.opcode == .text { page.received(Data(frame.data.readableBytesView)) }
                        page.close(BrowserError("Chromium closed the DevTools connection"))
                    } catch {
                        page.close(error)
                    }
                    return nil
                }
                let result = try await body(page)
                group.cancelAll()
                page.close(CancellationError())
                return result
            }
        }
    }

    /// Sends a command and returns its `result` (JSON), or throws the protocol's error.
    @discardableResult
    func call(_ method: String, _ params: [String: any Sendable] = [:]) async throws -> Data {
        let id = state.withLock { state -> Int in
            state.nextId += 1
            return state.nextId
        }
        let message = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": params])
        return try await withCheckedThrowingContinuation { continuation in
            let closed = state.withLock { state -> Bool in
                if state.closed { return true }
                state.waiting[id] = continuation
                return false
            }
            if closed { return continuation.resume(throwing: BrowserError("the DevTools connection is closed")) }
            Task { [outbound] in
                do {
                    try await outbound.write(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: message)))
                } catch {
                    self.finish(id, .failure(error))
                }
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value as JSON text.
    @discardableResult
    func evaluate(_ expression: String) async throws -> String {
        let answer = try await call("Runtime.evaluate", [
            "expression": "(async () => JSON.stringify(await (async () => { \(expression) })()))()",
            "awaitPromise": true, "returnByValue": true,
        ])
        let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
        if let exception = object["exceptionDetails"] as? [String: Any] {
            throw BrowserError("the page threw: \(exception)")
        }
        return (object["result"] as? [String: Any])?["value"] as? String ?? "null"
    }

    /// Evaluates `expression` and returns its value as a string ("" for null or undefined).
    func text(_ expression: String) async throws -> String {
        let json = try await evaluate("return \(expression);")
        return (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) as? String ?? ""
    }

    /// Waits until `condition` (a JavaScript expression) is true in the page; fails naming
    /// `what` and showing what the page said last.
    func waitFor(_ what: String, _ condition: String, timeout: Duration = .seconds(15), show: String = "document.body.innerText") async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await evaluate("return Boolean(\(condition));")) == "true" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let shown = (try? await text(show)) ?? "(unreadable)"
        throw BrowserError("the page did not show \(what) within \(timeout); it shows:\n\(shown.prefix(3000))")
    }

    /// A PNG of the whole page.
    func screenshot() async throws -> Data {
        let answer = try await call("Page.captureScreenshot", ["format": "png", "captureBeyondViewport": true])
        let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
        guard let base64 = object["data"] as? String, let png = Data(base64Encoded: base64) else {
            throw BrowserError("Page.captureScreenshot returned no image")
        }
        return png
    }

    private func received(_ data: Data) {
        guard let message = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        if let id = message["id"] as? Int {
            if let error = message["error"] {
                finish(id, .failure(BrowserError("DevTools error: \(error)")))
            } else {
                let result = (try? JSONSerialization.data(withJSONObject: message["result"] ?? [:])) ?? Data("{}".utf8)
                finish(id, .success(result))
            }
        } else if message["method"] as? String == "Page.javascriptDialogOpening" {
            let text = ((message["params"] as? [String: Any])?["message"] as? String) ?? ""
            state.withLock { $0.dialogs.append(text) }
            // The page is blocked until the dialog closes: answer it from here, without
            // waiting for the answer (this is the loop that would read it).
            let id = state.withLock { state -> Int in
                state.nextId += 1
                return state.nextId
            }
            if let reply = try? JSONSerialization.data(withJSONObject: [
                "id": id, "method": "Page.handleJavaScriptDialog", "params": ["accept": true],
            ]) {
                Task { [outbound] in
                    try? await outbound.write(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: reply)))
                }
            }
        }
    }

    private func finish(_ id: Int, _ result: Result<Data, any Error>) {
        let continuation = state.withLock { $0.waiting.removeValue(forKey: id) }
        continuation?.resume(with: result)
    }

    private func close(_ error: any Error) {
        let waiting = state.withLock { state -> [CheckedContinuation<Data, any Error>] in
            state.closed = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for continuation in waiting { continuation.resume(throwing: error) }
    }
}
