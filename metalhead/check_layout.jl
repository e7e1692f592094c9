# Apply the Julia readers' path and label rules to a tree made by metalhead/prepare.py.
# Base Julia only (no packages), Julia 1.5 or newer:
#
#     julia metalhead/check_layout.jl OUT [--val-size N] [--test-size N]
#
# The checks (the same, with the same output, as metalhead/metalhead_rules.py):
#   folders          Metalhead.ImageNet.RawFS("OUT/ILSVRC", :kaggle) reads
#                    ILSVRC/Data/CLS-LOC/{train,val,test}
#   mapping columns  LOC_synset_mapping.txt lines are "nXXXXXXXX <text>" (Metalhead takes
#                    columns 1-9 as the synset, 11- as the text)
#   mapping size     1000 distinct synsets
#   mapping order    sorted, so line k (Metalhead's label k) is label k of the records
#   val labels       LOC_val_solution.csv rows "ILSVRC2012_val_NNNNNNNN,<synset> ...": a
#                    new number in 1..val-size, a synset of the mapping
#   val files        each labelled image is at val/ILSVRC2012_val_NNNNNNNN.JPEG
#   val names        every file in val/ is such a name and has a row
#   val size         images 1..val-size all there (Metalhead's ValData has 50,000)
#   test size        test/ILSVRC2012_test_NNNNNNNN.JPEG for 1..test-size (100,000)
#   train folders    only train/<synset of the mapping>/<synset>_<n>.JPEG
#   train solution   each LOC_train_solution.csv row's image is at
#                    train/<synset>/<ImageId>.JPEG (FluxDistributed.jl's rule)
# The last line is "N passed, M failed"; the exit status is 1 when M > 0.

const CLS = "ILSVRC/Data/CLS-LOC"
const SYNSET_LINE = r"^n[0-9]{8} ."
const VAL_ID = r"^ILSVRC2012_val_([0-9]{8})$"
const VAL_FILE = r"^ILSVRC2012_val_([0-9]{8})\.JPEG$"
const TRAIN_FILE = r"^(n[0-9]{8})_[0-9]+\.JPEG$"
const TRAIN_ID = r"^(n[0-9]{8})_[0-9]+$"

val_name(n) = "ILSVRC2012_val_" * lpad(string(n), 8, '0') * ".JPEG"
listing(path) = isdir(path) ? sort(readdir(path)) : String[]

# (problem or nothing, [(line number, comma-separated fields)]) of the Kaggle
# ImageId,PredictionString file `name` under out, blank lines left out.
function table(out, name)
    path = joinpath(out, name)
    none = Tuple{Int,Vector{SubString{String}}}[]
    isfile(path) || return ("$name is missing", none)
    lines = readlines(path)
    if isempty(lines) || lines[1] != "ImageId,PredictionString"
        return ("$name line 1 is not 'ImageId,PredictionString'", none)
    end
    return (nothing, [(k, split(lines[k], ",")) for k in 2:length(lines) if !isempty(lines[k])])
end

function check(out::String, val_size::Int, test_size::Int)
    results = Tuple{Bool,String,String}[]
    rule(name, problem, fine) =
        push!(results, problem === nothing ? (true, name, fine) : (false, name, problem))

    base = joinpath(out, split(CLS, "/")...)
    missing_dirs = [s for s in ("train", "val", "test") if !isdir(joinpath(base, s))]
    rule("folders", isempty(missing_dirs) ? nothing : "missing $CLS/$(missing_dirs[1])",
         "$CLS/{train,val,test} are folders")

    # the synset mapping
    mapping_path = joinpath(out, "LOC_synset_mapping.txt")
    synsets = String[]
    if !isfile(mapping_path)
        for name in ("mapping columns", "mapping size", "mapping order")
            rule(name, "LOC_synset_mapping.txt is missing", "")
        end
    else
        bad = 0
        for (k, line) in enumerate(readlines(mapping_path))
            if occursin(SYNSET_LINE, line)
                push!(synsets, line[1:9])
            elseif bad == 0
                bad = k
            end
        end
        rule("mapping columns",
             bad == 0 ? nothing : "LOC_synset_mapping.txt line $bad is not 'nXXXXXXXX <text>'",
             "every line is 'nXXXXXXXX <text>'")
        distinct = length(Set(synsets))
        rule("mapping size",
             distinct == length(synsets) == 1000 ? nothing :
             "$(length(synsets)) lines, $distinct distinct synsets, expected 1000",
             "1000 distinct synsets")
        rule("mapping order", issorted(synsets) ? nothing :
             "not in sorted order: Metalhead's label k would not be label k of the records",
             "sorted: line k is label k, as in the records")
    end
    known = Set(synsets)

    # validation labels and files
    problem, lines = table(out, "LOC_val_solution.csv")
    rows = Dict{Int,String}()
    for (k, parts) in lines
        m = length(parts) == 2 ? match(VAL_ID, parts[1]) : nothing
        tokens = m === nothing ? SubString{String}[] : split(parts[2])
        n = m === nothing ? 0 : parse(Int, m.captures[1])
        if isempty(tokens) || !(tokens[1] in known) || !(1 <= n <= val_size) || haskey(rows, n)
            problem = "LOC_val_solution.csv line $k is not 'ILSVRC2012_val_NNNNNNNN," *
                      "<synset> ...' with a new number in 1..$val_size and a synset of " *
                      "the mapping"
            break
        end
        rows[n] = String(tokens[1])
    end
    rule("val labels", problem,
         "$(length(rows)) rows, each a new image with a synset of the mapping")
    val_dir = joinpath(base, "val")
    absent = [n for n in sort(collect(keys(rows))) if !isfile(joinpath(val_dir, val_name(n)))]
    rule("val files", isempty(absent) ? nothing :
         "$(length(absent)) of $(length(rows)) labelled images are not at Metalhead's path, " *
         "first $CLS/val/$(val_name(absent[1]))",
         "all $(length(rows)) labelled images at $CLS/val/ILSVRC2012_val_NNNNNNNN.JPEG")
    odd = String[]
    for name in listing(val_dir)
        m = match(VAL_FILE, name)
        if !(m !== nothing && haskey(rows, parse(Int, m.captures[1])) &&
             isfile(joinpath(val_dir, name)))
            push!(odd, name)
        end
    end
    rule("val names", isempty(odd) ? nothing :
         "$(length(odd)) entries in val/ Metalhead cannot read or label, first $CLS/val/$(odd[1])",
         "every file in val/ is ILSVRC2012_val_NNNNNNNN.JPEG with a row")
    lacking = [n for n in 1:val_size if !isfile(joinpath(val_dir, val_name(n)))]
    rule("val size", isempty(lacking) ? nothing :
         "$(length(lacking)) of $val_size images missing (Metalhead's ValData has $val_size), " *
         "first $CLS/val/$(val_name(lacking[1]))",
         "all $val_size validation images present")
    test_dir = joinpath(base, "test")
    test_name(n) = "ILSVRC2012_test_" * lpad(string(n), 8, '0') * ".JPEG"
    lacking = [n for n in 1:test_size if !isfile(joinpath(test_dir, test_name(n)))]
    rule("test size", isempty(lacking) ? nothing :
         "$(length(lacking)) of $test_size images missing, first $CLS/test/$(test_name(lacking[1]))",
         "all $test_size test images present")

    # training folders and LOC_train_solution.csv
    train_dir = joinpath(base, "train")
    wrong = String[]
    for entry in listing(train_dir)
        folder = joinpath(train_dir, entry)
        if !(entry in known) || !isdir(folder)
            push!(wrong, entry)
            continue
        end
        for name in listing(folder)
            m = match(TRAIN_FILE, name)
            if m === nothing || m.captures[1] != entry
                push!(wrong, entry * "/" * name)
            end
        end
    end
    rule("train folders", isempty(wrong) ? nothing :
         "$(length(wrong)) entries break train/<synset>/<synset>_<n>.JPEG, first $CLS/train/$(wrong[1])",
         "only train/<synset>/<synset>_<n>.JPEG, synsets of the mapping")
    problem, lines = table(out, "LOC_train_solution.csv")
    gone = String[]
    for (k, parts) in lines
        m = length(parts) == 2 ? match(TRAIN_ID, parts[1]) : nothing
        if m === nothing
            problem = "LOC_train_solution.csv line $k is not '<synset>_<n>,...'"
            break
        end
        if !isfile(joinpath(train_dir, m.captures[1], parts[1] * ".JPEG"))
            push!(gone, String(parts[1]))
        end
    end
    if problem === nothing && !isempty(gone)
        sort!(gone)
        problem = "$(length(gone)) of $(length(lines)) rows have no image at " *
                  "train/<synset>/<ImageId>.JPEG, first " *
                  "$CLS/train/$(split(gone[1], "_")[1])/$(gone[1]).JPEG"
    end
    rule("train solution", problem,
         "all $(length(lines)) rows' images at train/<synset>/<ImageId>.JPEG")
    return results
end

function main(args)
    out, val_size, test_size = nothing, 50000, 100000
    i = 1
    while i <= length(args)
        if args[i] in ("--val-size", "--test-size") && i < length(args)
            value = parse(Int, args[i+1])
            args[i] == "--val-size" ? (val_size = value) : (test_size = value)
            i += 2
        elseif out === nothing && !startswith(args[i], "--")
            out = args[i]
            i += 1
        else
            println(stderr, "usage: julia check_layout.jl OUT [--val-size N] [--test-size N]")
            return 2
        end
    end
    if out === nothing
        println(stderr, "usage: julia check_layout.jl OUT [--val-size N] [--test-size N]")
        return 2
    end
    results = check(out, val_size, test_size)
    for (passed, name, detail) in results
        println((passed ? "PASS " : "FAIL ") * name * ": " * detail)
    end
    failed = count(r -> !r[1], results)
    println("$(length(results) - failed) passed, $failed failed")
    return failed == 0 ? 0 : 1
end

exit(main(ARGS))
