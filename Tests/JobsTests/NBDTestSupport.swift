import Devices
import NBD
import DevServices
import Foundation
import Glibc
import Operations

/// A scratch appliance for export tests: a fake by-id directory, the export directory a
/// real nbdkit serves, and that nbdkit on a free loopback port.
struct NBDTestAppliance {
    let scratch: ScratchDirectory
    let byId: String
    let exports: String
    let server: NbdkitServer
    let backend: NbdkitDirectoryBackend

    static func start() async throws -> NBDTestAppliance {
        let scratch = try ScratchDirectory("volumed-nbd")
        let byId = try scratch.makeDirectory("by-id")
        let exports = try scratch.makeDirectory("exports")
        let server = try await NbdkitServer.start(exportDirectory: exports)
        let backend = NbdkitDirectoryBackend(exportDirectory: exports, host: server.host, port: server.port)
        return NBDTestAppliance(scratch: scratch, byId: byId, exports: exports, server: server, backend: backend)
    }

    func stop() async {
        await server.stop()
        scratch.remove()
    }

    /// A "volume": random bytes in a backing file, and the by-id link udev would create
    /// for it. Returns the link path (what gets exported) and the bytes.
    func attachVolume(_ volumeId: String, bytes count: Int) throws -> (byIdPath: String, bytes: Data) {
        let disk = try scratch.randomFile("disk-\(volumeId)-\(UInt32.random(in: 0 ... .max))", count: count)
        let link = byId + "/virtio-" + (try DiskSerial.serial(forVolumeId: volumeId))
        try repointSymlink(link, to: disk.path)
        return (link, disk.bytes)
    }

    /// Every byte of an export, read by `nbdcopy nbd://127.0.0.1:PORT/NAME -`.
    func readExport(_ exportName: String) async throws -> Data {
        let result = try await runTool(try NbdTools.nbdcopy().path, [server.uri(exportName: exportName), "-"])
        try result.requireSuccess()
        return result.standardOutput
    }
}

/// Runs blocking file-handle reads on a thread of their own, so the test can read a
/// child's stdout pipe at its own pace without holding a cooperative thread.
func readOffPool(_ body: @escaping @Sendable () throws -> Data) async throws -> Data {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A TCP listener on loopback that accepts connections (into its backlog) and never
/// says anything: a hung server, for handshake timeouts.
struct SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = self.fd
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw ScratchError("silent listener: \(String(cString: strerror(errno)))") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}
