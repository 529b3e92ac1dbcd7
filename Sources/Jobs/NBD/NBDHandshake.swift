import Primitives
import NIOCore
import NIOPosix

/// A minimal NBD client that asks a server about one export without opening it:
/// fixed-newstyle handshake, `NBD_OPT_INFO` for the name, then `NBD_OPT_ABORT`.
///
/// Used to verify an export is really served (and has the device's size) before the
/// export operation reports success. Runs on SwiftNIO's event loops, so it never blocks
/// a thread of the cooperative pool, and the whole exchange is bounded by `timeout`.
public enum NBDHandshake {
    /// Returns the export's size in bytes as the server reports it (NBD_INFO_EXPORT).
    public static func check(
        host: String,
        port: Int,
        exportName: String,
        timeout: Duration = .seconds(5)
    ) async throws -> UInt64 {
        try ExportName.validate(exportName)
        let endpoint = "\(host):\(port)"
        return try await withDeadline(
            timeout,
            onTimeout: NBDExportError(
                .handshakeTimeout,
                "NBD server at \(endpoint) did not complete the handshake for \(exportName) within \(secondsText(timeout)); "
                    + "check that nbdkit (or nbd-server) is running, listening on \(endpoint) and not overloaded"
            )
        ) {
            let channel = try await connect(host: host, port: port, endpoint: endpoint, timeout: timeout)
            return try await channel.executeThenClose { inbound, outbound in
                var reader = InboundReader(iterator: inbound.makeAsyncIterator(), endpoint: endpoint)
                return try await negotiate(exportName: exportName, endpoint: endpoint, reader: &reader, outbound: outbound)
            }
        }
    }

    private static func connect(
        host: String, port: Int, endpoint: String, timeout: Duration
    ) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        do {
            return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(timeout.nanoseconds))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw NBDExportError(
                .connectionFailed,
                "cannot connect to the NBD server at \(endpoint): \(error); check that nbdkit (or nbd-server) is running "
                    + "and listening there (VOLUMED_NBD_PORT)"
            )
        }
    }

    private static func negotiate(
        exportName: String,
        endpoint: String,
        reader: inout InboundReader,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> UInt64 {
        guard try await reader.read(UInt64.self) == NBDProtocol.initMagic else {
            throw NBDExportError(.protocolError, "\(endpoint) is not an NBD server (no NBDMAGIC greeting); check VOLUMED_NBD_PORT")
        }
        switch try await reader.read(UInt64.self) {
        case NBDProtocol.optionMagic:
            break
        case NBDProtocol.oldstyleMagic:
            throw NBDExportError(.protocolError, "NBD server at \(endpoint) uses oldstyle negotiation, which has no export names; run a newstyle server (nbdkit)")
        default:
            throw NBDExportError(.protocolError, "NBD server at \(endpoint) sent an unknown negotiation magic")
        }
        let serverFlags = try await reader.read(UInt16.self)
        guard serverFlags & NBDProtocol.flagFixedNewstyle != 0 else {
            throw NBDExportError(.protocolError, "NBD server at \(endpoint) does not offer fixed-newstyle negotiation, needed to ask about an export")
        }

        // Mirror NO_ZEROES only when offered: the client must not set flags the server lacks.
        let clientFlags = UInt32(NBDProtocol.flagFixedNewstyle | (serverFlags & NBDProtocol.flagNoZeroes))
        var request = ByteBuffer()
        request.writeInteger(clientFlags)
        let name = Array(exportName.utf8)
        request.writeInteger(NBDProtocol.optionMagic)
        request.writeInteger(NBDProtocol.optionInfo)
        request.writeInteger(UInt32(4 + name.count + 2))
        request.writeInteger(UInt32(name.count))
        request.writeBytes(name)
        request.writeInteger(UInt16(0))  // no extra info requests: NBD_INFO_EXPORT always comes
        try await outbound.write(request)

        var size: UInt64?
        while true {
            let reply = try await reader.readOptionReply(expecting: NBDProtocol.optionInfo)
            switch reply.type {
            case NBDProtocol.replyInfo:
                var data = reply.data
                if data.readInteger(as: UInt16.self) == NBDProtocol.infoExport, let exportSize = data.readInteger(as: UInt64.self) {
                    size = exportSize
                }
            case NBDProtocol.replyAck:
                try await sendAbort(outbound)
                guard let size else {
                    throw NBDExportError(.protocolError, "NBD server at \(endpoint) acknowledged \(exportName) without reporting its size (NBD_INFO_EXPORT)")
                }
                return size
            default:
                try? await sendAbort(outbound)
                throw replyError(reply, exportName: exportName, endpoint: endpoint)
            }
        }
    }

    private static func sendAbort(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        var abort = ByteBuffer()
        abort.writeInteger(NBDProtocol.optionMagic)
        abort.writeInteger(NBDProtocol.optionAbort)
        abort.writeInteger(UInt32(0))
        try await outbound.write(abort)
    }

    private static func replyError(_ reply: OptionReply, exportName: String, endpoint: String) -> NBDExportError {
        let serverText = reply.data.getString(at: reply.data.readerIndex, length: reply.data.readableBytes) ?? ""
        let said = serverText.isEmpty ? "" : " (server said: \(quotedForMessage(serverText)))"
        switch reply.type {
        case NBDProtocol.replyErrorUnknown:
            return NBDExportError(
                .exportUnknown,
                "NBD server at \(endpoint) has no export named \(exportName)\(said); publish it first, and check that "
                    + "the server serves the directory volumed writes (VOLUMED_NBD_EXPORT_DIR / nbdkit dir=)"
            )
        case NBDProtocol.replyErrorUnsupported:
            return NBDExportError(.protocolError, "NBD server at \(endpoint) does not support NBD_OPT_INFO\(said); use nbdkit (VOLUMED_NBD_BACKEND=nbdkit)")
        case NBDProtocol.replyErrorPolicy:
            return NBDExportError(.protocolError, "NBD server at \(endpoint) refused to describe \(exportName) by policy\(said); check its access list (authfile/allowlist)")
        default:
            let kind = reply.type & NBDProtocol.replyErrorBit != 0 ? "error" : "unexpected reply"
            return NBDExportError(.protocolError, "NBD server at \(endpoint) answered NBD_OPT_INFO for \(exportName) with \(kind) 0x\(String(reply.type, radix: 16))\(said)")
        }
    }
}

/// One option reply: its type and payload.
struct OptionReply {
    let type: UInt32
    let data: ByteBuffer
}

/// Accumulates inbound chunks so the handshake can read fixed-size fields.
struct InboundReader {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let endpoint: String
    var buffer = ByteBuffer()

    mutating func read<T: FixedWidthInteger>(_ type: T.Type) async throws -> T {
        var bytes = try await readSlice(MemoryLayout<T>.size)
        return bytes.readInteger(as: T.self)!
    }

    mutating func readSlice(_ count: Int) async throws -> ByteBuffer {
        while buffer.readableBytes < count {
            guard var chunk = try await iterator.next() else {
                try Task.checkCancellation()
                throw NBDExportError(.connectionFailed, "NBD server at \(endpoint) closed the connection during the handshake")
            }
            buffer.writeBuffer(&chunk)
        }
        return buffer.readSlice(length: count)!
    }

    mutating func readOptionReply(expecting option: UInt32) async throws -> OptionReply {
        guard try await read(UInt64.self) == NBDProtocol.replyMagic else {
            throw NBDExportError(.protocolError, "NBD server at \(endpoint) sent an option reply without the reply magic")
        }
        let repliedOption = try await read(UInt32.self)
        let type = try await read(UInt32.self)
        let length = try await read(UInt32.self)
        guard repliedOption == option else {
            throw NBDExportError(.protocolError, "NBD server at \(endpoint) replied to option \(repliedOption) instead of \(option)")
        }
        guard length <= NBDProtocol.maximumReplyLength else {
            throw NBDExportError(.protocolError, "NBD server at \(endpoint) sent a \(length)-byte option reply, over the \(NBDProtocol.maximumReplyLength)-byte limit")
        }
        return OptionReply(type: type, data: try await readSlice(Int(length)))
    }
}

/// Runs `body`, cancelling it and throwing `timeoutError` when `timeout` passes first.
public func withDeadline<T: Sendable>(
    _ timeout: Duration,
    onTimeout timeoutError: any Error & Sendable,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw timeoutError }
        return value
    }
}
