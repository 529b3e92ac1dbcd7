import Foundation

/// One step of a volume's chain, enqueued once the step before it is finished.
enum ChaosStep: String, Sendable, CaseIterable {
    case create
    /// To the chain's appliance: needs exactly one attachVolume.
    case attach
    /// The same VM again: verified, never a second attachVolume.
    case repeatAttach = "repeat-attach"
    /// A bad step: a VM CloudStack does not know. Must fail (`vm_not_found`) without a side effect.
    case attachToUnknownVM = "attach-unknown-vm"
    case export
    case unexport
    case detach
    case delete

    var operationType: String {
        switch self {
        case .create: return "create"
        case .attach, .repeatAttach, .attachToUnknownVM: return "attach"
        case .export: return "export"
        case .unexport: return "unexport"
        case .detach: return "detach"
        case .delete: return "delete"
        }
    }

    /// The error codes a bad step may fail with; nil for a step that must complete.
    var expectedFailureCodes: Set<String>? {
        self == .attachToUnknownVM ? ["vm_not_found"] : nil
    }
}

/// Where a chain leaves its volume, so the end state is not just "everything deleted".
enum ChainShape: String, Sendable, CaseIterable {
    case full, keptExported = "kept-exported", keptAttached = "kept-attached", keptDetached = "kept-detached"
}

/// One volume's life: create → attach (appliance A or B) → export → … → delete, or a prefix
/// of it that leaves the volume attached, exported or detached.
struct VolumeChain: Sendable {
    let index: Int
    let applianceIndex: Int
    let shape: ChainShape
    /// The replicated VM the export is for (`vm_id` of the export).
    let sourceVMID: String
    /// The unknown VM of an `attach-unknown-vm` step.
    let unknownVMID: String
    let sizeGiB: Int
    let steps: [ChaosStep]
}

/// A row on its own that must fail cleanly: it names a volume CloudStack never had.
struct BadRow: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case attachUnknownVolume = "attach-unknown-volume"
        case detachUnknownVolume = "detach-unknown-volume"
        case exportUnknownVolume = "export-unknown-volume"
    }
    let index: Int
    let kind: Kind
    let volumeID: String

    var operationType: String {
        switch kind {
        case .attachUnknownVolume: return "attach"
        case .detachUnknownVolume: return "detach"
        case .exportUnknownVolume: return "export"
        }
    }

    var expectedFailureCodes: Set<String> {
        switch kind {
        case .attachUnknownVolume, .detachUnknownVolume: return ["volume_not_found", "cloudstack_not_found"]
        case .exportUnknownVolume: return ["volume_not_on_appliance"]
        }
    }
}

/// What a run enqueues, drawn from the seed: chains until the operation count is reached,
/// with a bad row about every 25 operations.
struct ChaosPlan: Sendable {
    enum Item: Sendable {
        case chain(VolumeChain)
        case bad(BadRow)
    }

    let items: [Item]
    let operationCount: Int

    var chains: [VolumeChain] { items.compactMap { if case .chain(let chain) = $0 { chain } else { nil } } }
    var badRows: [BadRow] { items.compactMap { if case .bad(let row) = $0 { row } else { nil } } }

    static let badRowEvery = 25

    static func make(operations: Int, seed: UInt64) -> ChaosPlan {
        var random = SeededRandom(seed: seed)
        var items: [Item] = []
        var total = 0
        var chainCount = 0
        var badCount = 0
        while total < operations {
            if total / badRowEvery > badCount {
                let kind = BadRow.Kind.allCases[badCount % BadRow.Kind.allCases.count]
                items.append(.bad(BadRow(index: badCount, kind: kind, volumeID: random.uuid())))
                badCount += 1
                total += 1
                continue
            }
            let chain = makeChain(index: chainCount, random: &random)
            items.append(.chain(chain))
            chainCount += 1
            total += chain.steps.count
        }
        return ChaosPlan(items: items, operationCount: total)
    }

    private static func makeChain(index: Int, random: inout SeededRandom) -> VolumeChain {
        let draw = random.unit()
        let shape: ChainShape = draw < 0.65 ? .full : draw < 0.80 ? .keptExported : draw < 0.92 ? .keptAttached : .keptDetached
        var steps: [ChaosStep] = [.create]
        if random.unit() < 0.10 { steps.append(.attachToUnknownVM) }
        steps.append(.attach)
        let repeatAttach = random.unit() < 0.40
        switch shape {
        case .full:
            steps += [.export] + (repeatAttach ? [.repeatAttach] : []) + [.unexport, .detach, .delete]
        case .keptExported:
            steps += [.export] + (repeatAttach ? [.repeatAttach] : [])
        case .keptAttached:
            steps += repeatAttach ? [.repeatAttach] : []
        case .keptDetached:
            steps += [.detach]
        }
        return VolumeChain(
            index: index, applianceIndex: random.unit() < 0.5 ? 0 : 1, shape: shape, sourceVMID: random.uuid(),
            unknownVMID: random.uuid(), sizeGiB: random.unit() < 0.8 ? 1 : 2, steps: steps)
    }
}

/// SplitMix64: a small generator whose sequence depends only on the seed, so a plan can
/// be drawn again from the seed a run printed.
struct SeededRandom: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// In [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    mutating func uuid() -> String {
        let (high, low) = (next(), next())
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            bytes[index] = UInt8(truncatingIfNeeded: high >> (8 * index))
            bytes[index + 8] = UInt8(truncatingIfNeeded: low >> (8 * index))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40 // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80 // RFC 4122 variant
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return uuid.uuidString.lowercased()
    }
}
