// Package testrules holds no code: its tests check rules that the
// module's other tests must follow (see TestTimeIsMarked).
package testrules
